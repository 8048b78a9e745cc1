"""A use case's feature set as data: what it refuses, and the Feast objects built from it for any domain."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from feast.on_demand_feature_view import OnDemandFeatureView

from berg.features.definitions import AS_OF_TAG, build_definitions, view_source_schema
from berg.features.feature_set import (
    REQUEST_EVENT_UNIX,
    FeatureSetError,
    SnapshotAggregate,
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


def test_the_on_demand_function_survives_feasts_rebuild_from_its_source_text() -> None:
    definitions = build_definitions(clicks_features(), "/offline")
    assert definitions.on_demand is not None
    # What a reader of the registry gets: the function rebuilt from its source, without its module's globals.
    rebuilt = OnDemandFeatureView.from_proto(definitions.on_demand.to_proto())
    inputs = pd.DataFrame(
        {
            "bid": [1.0, 2.0, 0.5],
            REQUEST_EVENT_UNIX: [3_600.0, 7_200.0, 100.0],
            "bid_mean_24h": [0.5, np.nan, 0.0],
            "last_impression_unix": [3_000.0, 7_080.0, np.nan],
        }
    )
    expected = bid_context(inputs)
    assert expected["bid_to_viewer_mean_24h"].tolist()[0] == 2.0
    pd.testing.assert_frame_equal(rebuilt.feature_transformation.transform(inputs)[list(expected)], expected)


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
