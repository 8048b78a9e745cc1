"""A use case's feature set as data: what it refuses, and the Feast objects built from it for any domain."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from feast.on_demand_feature_view import OnDemandFeatureView

from berg.features.definitions import AS_OF_TAG, build_definitions, view_source_schema
from berg.features.feature_set import (
    ARRIVAL_TIME,
    REQUEST_EVENT_UNIX,
    DeclaredWindow,
    FeatureSet,
    FeatureSetError,
    SnapshotAggregate,
    TrustedView,
    ViewColumns,
)
from berg_clicks.features import bid_context, clicks_features
from berg_fraud.features import fraud_features

pytestmark = pytest.mark.unit


def test_the_feast_objects_of_another_domain_follow_its_declaration() -> None:
    features = clicks_features()
    definitions = build_definitions(features, "/offline")
    assert [(entity.name, entity.join_key) for entity in definitions.entities] == [
        ("viewer", "viewer_id"),
        ("campaign", "campaign_id"),
    ]
    for view in features.views:
        feast_view = definitions.views[view.name]
        assert feast_view.tags == {"kind": view.kind, AS_OF_TAG: view.as_of}
        assert feast_view.ttl == view.ttl
        assert [field.name for field in feast_view.features] == [spec.name for spec in view.features]
        assert definitions.sources[view.name].path == f"/offline/{view.name}"
        assert view_source_schema(view).names[0] == view.entity.key
    served = [
        feature.name for projection in definitions.service.feature_view_projections for feature in projection.features
    ]
    assert served == [*(name for view in features.views for name in view.model_features), *features.on_demand_features]
    assert definitions.request is not None
    assert [field.name for field in definitions.request.schema] == ["bid", REQUEST_EVENT_UNIX]
    assert features.model_features == (*served, "bid", "slot")
    assert [push.name for push in definitions.push_sources] == ["viewer_aggregates_push"]


_CLICKS_INPUTS = {
    "bid": [1.0, 2.0, 0.5, None],
    REQUEST_EVENT_UNIX: [3_600.0, 7_200.0, 100.0, 50.0],
    "bid_mean_24h": [0.5, math.nan, 0.0, None],
    "last_impression_unix": [3_000.0, 7_080.0, math.nan, None],
}


def test_the_on_demand_function_survives_feasts_rebuild_from_its_source_text() -> None:
    definitions = build_definitions(clicks_features(), "/offline")
    assert definitions.on_demand is not None
    # What a reader of the registry gets: the function rebuilt from its source, without its module's globals.
    rebuilt = OnDemandFeatureView.from_proto(definitions.on_demand.to_proto())
    assert rebuilt.mode == "python"
    assert rebuilt.feature_transformation.udf is not bid_context
    expected = bid_context({name: list(values) for name, values in _CLICKS_INPUTS.items()})
    np.testing.assert_array_equal(expected["bid_to_viewer_mean_24h"], [2.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(expected["minutes_since_previous_impression"], [10.0, 2.0, np.nan, np.nan])
    found = rebuilt.feature_transformation.transform({name: list(values) for name, values in _CLICKS_INPUTS.items()})
    for name, values in expected.items():
        np.testing.assert_array_equal(found[name], values)


def _bid_context_in_pandas(inputs: pd.DataFrame) -> pd.DataFrame:
    bid, mean = inputs["bid"].astype("float64"), inputs["bid_mean_24h"].astype("float64")
    out = pd.DataFrame(index=inputs.index)
    out["bid_to_viewer_mean_24h"] = bid / mean.where(mean > 0)
    out["minutes_since_previous_impression"] = (inputs[REQUEST_EVENT_UNIX] - inputs["last_impression_unix"]) / 60.0
    return out


def test_compute_gives_floats_with_nan_for_missing_in_either_mode() -> None:
    python_view = clicks_features().on_demand
    assert python_view is not None
    pandas_view = dataclasses.replace(python_view, function=_bid_context_in_pandas, mode="pandas")
    for view in (python_view, pandas_view):
        out = view.compute(_CLICKS_INPUTS)
        assert list(out) == ["bid_to_viewer_mean_24h", "minutes_since_previous_impression"], view.mode
        np.testing.assert_array_equal(out["bid_to_viewer_mean_24h"], [2.0, np.nan, np.nan, np.nan])
        np.testing.assert_array_equal(out["minutes_since_previous_impression"], [10.0, 2.0, np.nan, np.nan])
    with pytest.raises(KeyError, match="last_impression_unix"):
        python_view.compute({name: values for name, values in _CLICKS_INPUTS.items() if name != "last_impression_unix"})


def test_a_feature_declared_twice_or_an_input_no_view_stores_is_refused_by_name() -> None:
    features = clicks_features()
    (viewer,) = features.streaming
    with pytest.raises(FeatureSetError, match=r"features \['impressions_1h'\] are declared twice"):
        dataclasses.replace(features, request_features=("bid", "impressions_1h"))
    assert features.on_demand is not None
    unknown = dataclasses.replace(features.on_demand, inputs=(ViewColumns(viewer.name, ("bid_max_7d",)),))
    with pytest.raises(FeatureSetError, match=r"reads viewer_aggregates:\['bid_max_7d'\]"):
        dataclasses.replace(features, on_demand=unknown)
    with pytest.raises(FeatureSetError, match="a field is given for a mean, and only for one"):
        SnapshotAggregate("campaign_bid_mean_1d", "mean", timedelta(days=1))


def test_watch_only_features_and_the_longest_window_come_from_the_declarations() -> None:
    assert clicks_features().watch_only() == frozenset()
    assert clicks_features().longest_window == timedelta(days=1)
    fraud = fraud_features()
    assert fraud.watch_only() == {"merchant_amount_mean_24h", "merchant_labels_known_30d"}
    assert fraud.longest_window == timedelta(days=30)


def _trusting(*windows: DeclaredWindow, name: str = "warehouse_scores") -> TrustedView:
    return TrustedView(name, "filled by the warehouse's audited nightly job", windows)


@pytest.mark.parametrize("features", [fraud_features(), clicks_features()], ids=["fraud", "clicks"])
def test_every_declared_view_looks_back_only_and_reads_labels_by_arrival(features: FeatureSet) -> None:
    for view in features.views:
        assert view.windows, view.name
        for window in view.windows:
            assert window.reaches_to <= timedelta(0), view.name
            assert window.stream == "scored" or window.time_column == ARRIVAL_TIME, view.name
    for snapshot in features.snapshots:
        assert {window.stream for window in snapshot.windows} == {"scored", "labels"}


def test_the_window_lint_refuses_a_trusted_view_reaching_past_the_prediction_time() -> None:
    forward = DeclaredWindow("scored", "event_time", timedelta(days=1), reaches_to=timedelta(hours=24))
    with pytest.raises(FeatureSetError, match=r"'warehouse_scores' reads scored up to 1 day, 0:00:00 past the pred"):
        dataclasses.replace(fraud_features(), trusted=(_trusting(forward),))
    # Up to the prediction time, not past it: accepted.
    clean = dataclasses.replace(
        fraud_features(), trusted=(_trusting(DeclaredWindow("scored", "event_time", timedelta(days=1))),)
    )
    assert [view.name for view in clean.trusted] == ["warehouse_scores"]


def test_the_window_lint_refuses_labels_read_by_their_event_time() -> None:
    by_event_time = DeclaredWindow("labels", "event_time", timedelta(days=30))
    with pytest.raises(FeatureSetError, match=r"reads labels by 'event_time': read them by 'arrival_time'"):
        dataclasses.replace(fraud_features(), trusted=(_trusting(by_event_time),))


def test_a_trusted_view_needs_a_reason_its_windows_and_no_declared_producer() -> None:
    with pytest.raises(FeatureSetError, match="say why"):
        TrustedView("warehouse_scores", " ", (DeclaredWindow("scored", "event_time", timedelta(days=1)),))
    with pytest.raises(FeatureSetError, match="declare what it reads"):
        TrustedView("warehouse_scores", "audited", ())
    declared = _trusting(DeclaredWindow("scored", "event_time", timedelta(days=1)), name="merchant_aggregates")
    with pytest.raises(FeatureSetError, match="re-run by the recompute check"):
        dataclasses.replace(fraud_features(), trusted=(declared,))
