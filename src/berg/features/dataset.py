"""Point-in-time training frames from Berg's feature store.

:func:`build_training_frame` gives each row of the caller's entity frame (join keys,
a prediction time, a label, anything else) the feature values that were valid at that
time::

    frame = build_training_frame(store, events, "my_model_v1", with_as_of=True)
    layout = describe_features(store, "my_model_v1")
    check_leakage(frame, label_column="label", prediction_time_column="event_timestamp",
                  feature_columns=layout.features, as_of_columns=layout.as_of)

For each feature view a row gets the view's latest source row (by event time, then
created time: a correction wins over the row it replaces) at or before the row's time
and no older than the view's TTL, both bounds inclusive, as Feast defines them; null
where there is none. Every caller row comes back, in the caller's order and index,
with the caller's columns untouched.

All of it is Feast's API: the rows go to ``store.get_historical_features`` with the
feature service (or references) and come back with the views' values and the
on-demand features Feast computes (``OnDemandFeatureView.transform_arrow``). What
makes that correct is Berg's offline store
(:class:`berg.features.offline_store.AppendOnlyFileOfflineStore`, named in both
profiles), which implements the retrieval as the point-in-time join of
:mod:`berg.features.point_in_time` because Feast 0.67's own Dask retrieval drops
rows, collapses same-instant rows, breaks created-time ties at random and fails on
several parquet parts (the store's module docstring lists the evidence). This module
adds what a training set needs on top: the caller's index, columns and timestamps
back untouched, typed feature columns, the strictly-before shift and the as-of
columns for the leakage check.

**strictly_before.** The features service pushes an entity's row at a scored event's
(a transaction's, say) event time ``t`` that *includes* that event; the scorer,
serving the event, sees only the state before it. Training must match serving, so by
default the join is made at ``t`` minus one microsecond (the offline sources'
resolution): a row stamped ``t`` is not visible to the row predicted at ``t``. The
returned frame keeps the caller's timestamps unchanged. Pass ``strictly_before=False``
for the state "as of and including ``t``" (e.g. to compare with what was pushed online
at ``t``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow as pa
from feast import FeatureService, FeatureStore, FeatureView, Field
from feast.infra.offline_stores.offline_utils import DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.types import Bool, Float32, Float64, Int32, Int64

from berg.features.definitions import AS_OF_TAG
from berg.features.feature_set import EVENT_TIMESTAMP
from berg.features.point_in_time import join_keys

__all__ = [
    "AS_OF_TAG",
    "STRICTLY_BEFORE_OFFSET",
    "FeatureLayout",
    "build_training_frame",
    "describe_features",
]

STRICTLY_BEFORE_OFFSET = pd.Timedelta(microseconds=1)
"""How far before the caller's time the join is made with ``strictly_before`` (the sources' resolution)."""

_ROW_ID = "__berg_row_id"
_QUERY_TIME = DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
"""The time column of the frame given to Feast (the name Feast looks for)."""
_NULLABLE = {
    pa.int8(): pd.Int64Dtype(),
    pa.int16(): pd.Int64Dtype(),
    pa.int32(): pd.Int64Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}
"""Arrow -> pandas types that keep nulls without turning integers into floats."""


@dataclass(frozen=True)
class FeatureLayout:
    """What a training frame holds beyond the caller's columns, for the leakage check."""

    features: Mapping[str, str]
    """Feature column -> the (feature or on-demand) view it comes from, in frame order."""
    as_of: Mapping[str, tuple[str, ...]]
    """View -> the as-of columns its values rest on (an on-demand view: its source views').
    A view without a known as-of feature is absent. The columns are in a frame built
    ``with_as_of=True``."""


@dataclass(frozen=True)
class _Plan:
    features: FeatureService | list[str]
    """What to ask Feast for: the feature service itself, or feature references."""
    entity_columns: tuple[str, ...]
    """The caller's columns Feast needs: the views' join keys and the on-demand views' request columns."""
    join_keys: Mapping[str, tuple[str, ...]]
    """Feature view -> its join keys, for the views Feast joins."""
    outputs: dict[str, str]
    """Feast's ``view__feature`` column -> output column, in output order."""
    dtypes: dict[str, str]
    """Feast's column -> the pandas dtype it is returned as."""
    layout: FeatureLayout


def _internal(view: str, feature: str) -> str:
    return f"{view}__{feature}"


def _pandas_dtype(field: Field) -> str | None:
    if field.dtype in (Int32, Int64):
        return "Int64"
    if field.dtype in (Float32, Float64):
        return "float64"
    if field.dtype == Bool:
        return "boolean"
    return None


def _parse_ref(ref: str) -> tuple[str, str]:
    view, sep, feature = ref.partition(":")
    if not sep or not view or not feature:
        raise ValueError(f"feature reference {ref!r} is not of the form 'feature_view:feature'")
    return view, feature


def _plan(
    store: FeatureStore,
    features: str | Sequence[str],
    extra_features: Sequence[str],
    *,
    with_as_of: bool,
    full_feature_names: bool,
) -> _Plan:
    views = {view.name: view for view in store.list_feature_views(allow_cache=True)}
    on_demand_views = {view.name: view for view in store.list_on_demand_feature_views(allow_cache=True)}
    service = store.get_feature_service(features, allow_cache=True) if isinstance(features, str) else None
    if service is not None:
        requested = [(p.name, f.name) for p in service.feature_view_projections for f in p.features]
    else:
        requested = [_parse_ref(ref) for ref in features]
    refs = list(dict.fromkeys([*requested, *(_parse_ref(ref) for ref in extra_features)]))

    fetched: dict[str, list[str]] = {}
    request_columns: dict[str, None] = {}
    outputs: dict[str, str] = {}
    dtypes: dict[str, str] = {}
    attribution: dict[str, str] = {}

    def fields_of(view: FeatureView | OnDemandFeatureView) -> dict[str, Field]:
        return {field.name: field for field in view.features}

    def fetch(view_name: str, feature: str) -> None:
        if feature not in fields_of(views[view_name]):
            raise ValueError(f"feature view {view_name!r} has no feature {feature!r}")
        wanted = fetched.setdefault(view_name, [])
        if feature not in wanted:
            wanted.append(feature)

    def output(view_name: str, feature: str, field: Field) -> None:
        name = _internal(view_name, feature)
        column = name if full_feature_names else feature
        if column in outputs.values() and outputs.get(name) != column:
            raise ValueError(f"two requested features are both named {column!r}: pass full_feature_names=True")
        outputs[name] = column
        attribution[column] = view_name
        dtype = _pandas_dtype(field)
        if dtype is not None:
            dtypes[name] = dtype

    on_demand: dict[str, None] = {}
    for view_name, feature in refs:
        if view_name in views:
            fetch(view_name, feature)
            output(view_name, feature, fields_of(views[view_name])[feature])
        elif view_name in on_demand_views:
            odfv = on_demand_views[view_name]
            if feature not in fields_of(odfv):
                raise ValueError(f"on-demand feature view {view_name!r} has no feature {feature!r}")
            on_demand[view_name] = None
            request_columns.update(dict.fromkeys(odfv.get_request_data_schema()))
            for projection in odfv.source_feature_view_projections.values():
                for field in projection.features:
                    fetch(projection.name, field.name)
            output(view_name, feature, fields_of(odfv)[feature])
        else:
            raise ValueError(f"no feature view or on-demand view is named {view_name!r} (in '{view_name}:{feature}')")

    as_of_columns: dict[str, str] = {}
    as_of_refs: list[tuple[str, str]] = []
    for view_name in list(fetched):
        as_of = views[view_name].tags.get(AS_OF_TAG)
        if as_of is None or as_of not in fields_of(views[view_name]):
            continue
        as_of_columns[view_name] = as_of if not full_feature_names else _internal(view_name, as_of)
        if with_as_of and _internal(view_name, as_of) not in outputs:
            fetch(view_name, as_of)
            as_of_refs.append((view_name, as_of))
            name = _internal(view_name, as_of)
            outputs[name] = as_of_columns[view_name]
            dtypes[name] = "float64"

    layout_as_of: dict[str, tuple[str, ...]] = {
        view: (column,) for view, column in as_of_columns.items() if view in set(attribution.values())
    }
    for view_name in on_demand:
        sources = [p.name for p in on_demand_views[view_name].source_feature_view_projections.values()]
        if sources and all(source in as_of_columns for source in sources):
            layout_as_of[view_name] = tuple(dict.fromkeys(as_of_columns[source] for source in sources))

    # The service itself when it asks for exactly what is wanted (Feast then names its columns after the
    # projections, which are the views' own names when nothing is aliased), else references.
    plain = service is not None and all(
        not p.name_alias and not p.join_key_map and p.version_tag is None for p in service.feature_view_projections
    )
    keys = {name: tuple(join_keys(views[name])) for name in fetched}
    return _Plan(
        features=service
        if service is not None and plain and not extra_features and not as_of_refs
        else [f"{view}:{feature}" for view, feature in [*refs, *as_of_refs]],
        entity_columns=tuple(dict.fromkeys([*(key for names in keys.values() for key in names), *request_columns])),
        join_keys=MappingProxyType(keys),
        outputs=outputs,
        dtypes=dtypes,
        layout=FeatureLayout(features=MappingProxyType(attribution), as_of=MappingProxyType(layout_as_of)),
    )


def describe_features(
    store: FeatureStore,
    features: str | Sequence[str],
    *,
    extra_features: Sequence[str] = (),
    full_feature_names: bool = False,
) -> FeatureLayout:
    """Which view each feature column of a training frame comes from, and the as-of columns per view.

    Takes the same arguments as :func:`build_training_frame`; reads the registry only.
    """
    return _plan(store, features, extra_features, with_as_of=True, full_feature_names=full_feature_names).layout


def _column(table: pa.Table, name: str, dtype: str | None) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """A column of Feast's result as a pandas array of ``dtype`` (nulls kept, integers not made floats)."""
    series = table.select([name]).to_pandas(types_mapper=_NULLABLE.get)[name]
    if dtype is not None:
        series = series.astype(dtype)
    return series.array


def build_training_frame(
    store: FeatureStore,
    entities: pd.DataFrame,
    features: str | Sequence[str],
    *,
    extra_features: Sequence[str] = (),
    timestamp_column: str = EVENT_TIMESTAMP,
    strictly_before: bool = True,
    with_as_of: bool = False,
    full_feature_names: bool = False,
) -> pd.DataFrame:
    """The caller's rows with the point-in-time feature values of each row's entities and time.

    For each feature view, a row gets the view's latest source row (by event time,
    then created time) at or before the row's time (just before it, with
    ``strictly_before``) and within the view's TTL; null where there is none, or where
    the row's join keys or time are null. On-demand features are computed from the
    row's request columns and those values. One call of Feast's
    ``store.get_historical_features`` with the feature service (or the references),
    which Berg's offline store answers by reading each view's parquet source once,
    for the time range the frame needs.

    Args:
        store: A Feast store with Berg's definitions applied (:func:`berg.features.store.prepare_store`)
            and Berg's offline store (both profiles name it).
        entities: One row per prediction: the join keys the views need, the time column,
            the request columns of on-demand views (``event_unix`` and the fields they
            read), and anything else (labels, ids), passed through.
            A tz-naive time is read as UTC.
        features: A feature service name, or feature references (``"view:feature"``).
        extra_features: More references, added to ``features``.
        timestamp_column: The column with each row's prediction time.
        strictly_before: Join at the row's time minus one microsecond, so a feature row
            stamped exactly at the prediction time (which includes the predicted event)
            is not used: what the online scorer sees. The returned time column is
            unchanged either way.
        with_as_of: Also return each feature view's as-of feature (the one its :data:`AS_OF_TAG` tag names)
            that a requested feature rests on, for :func:`berg.features.leakage.check_leakage`.
        full_feature_names: Name columns ``view__feature`` instead of ``feature``.

    Returns:
        ``entities`` (same index, order and columns) followed by the feature columns:
        integers as pandas ``Int64``, floats as ``float64``, nulls as ``<NA>``/``NaN``.

    Raises:
        ValueError: for an unknown view or feature, a missing join key, time or request
            column, a feature column whose name the entity frame already uses, or an
            offline store that does not return every row (Feast's own Dask store).
    """
    plan = _plan(store, features, extra_features, with_as_of=with_as_of, full_feature_names=full_feature_names)
    if timestamp_column not in entities.columns:
        raise ValueError(f"the entity frame has no time column {timestamp_column!r}")
    clashing = [column for column in plan.outputs.values() if column in entities.columns]
    if clashing:
        raise ValueError(f"the entity frame already has columns named like features: {clashing}")
    for view_name, keys in plan.join_keys.items():
        missing = [key for key in keys if key not in entities.columns]
        if missing:
            raise ValueError(f"feature view {view_name!r} joins on {missing}, which the entity frame lacks")
    for odfv in store.list_on_demand_feature_views(allow_cache=True):
        if any(view == odfv.name for view in plan.layout.features.values()):
            absent = [name for name in odfv.get_request_data_schema() if name not in entities.columns]
            if absent:
                raise ValueError(f"on-demand feature view {odfv.name!r} needs the request columns {absent}")
    if _QUERY_TIME in plan.entity_columns or _ROW_ID in plan.entity_columns:
        raise ValueError(f"a join key or request column is named {_QUERY_TIME!r} or {_ROW_ID!r}")

    # What Feast gets: the columns it needs, the query time under the name it looks for, a row id.
    query_time = pd.to_datetime(entities[timestamp_column], utc=True)
    if strictly_before:
        query_time = query_time - STRICTLY_BEFORE_OFFSET
    rows = pd.DataFrame({column: entities[column].to_numpy() for column in plan.entity_columns})
    rows[_QUERY_TIME] = query_time.array  # positional; to_numpy() would make tz-aware objects
    rows[_ROW_ID] = np.arange(len(rows), dtype=np.int64)

    job = store.get_historical_features(entity_df=rows, features=plan.features, full_feature_names=True)
    result = job.to_arrow()

    row_ids = result[_ROW_ID].to_numpy()
    in_order = np.array_equal(row_ids, rows[_ROW_ID].to_numpy())  # what Berg's store returns
    if not in_order:
        counts = np.bincount(row_ids, minlength=len(rows)) if len(row_ids) and row_ids.min() >= 0 else None
        if len(row_ids) != len(rows) or counts is None or len(counts) != len(rows) or not (counts == 1).all():
            raise ValueError(
                f"the offline store returned {len(row_ids)} rows for {len(rows)} entity rows, not each row once: "
                "use Berg's offline store (berg.features.offline_store.AppendOnlyFileOfflineStore)"
            )
        result = result.take(pa.array(np.argsort(row_ids)))

    out = entities.copy()
    for name, column in plan.outputs.items():
        out[column] = _column(result, name, plan.dtypes.get(name))
    return out
