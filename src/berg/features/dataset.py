"""Point-in-time training frames from Berg's feature store.

:func:`build_training_frame` gives each row of the caller's entity frame (join keys,
a prediction time, a label, anything else) the feature values that were valid at that
time::

    frame = build_training_frame(store, transactions, with_as_of=True)
    layout = describe_features(store)
    check_leakage(frame, label_column="is_fraud", prediction_time_column="event_timestamp",
                  feature_columns=layout.features, as_of_columns=layout.as_of)

For each feature view a row gets the view's latest source row (by event time, then
created time: a correction wins over the row it replaces) at or before the row's time
and no older than the view's TTL, both bounds inclusive, as Feast defines them; null
where there is none. Every caller row comes back, in the caller's order and index,
with the caller's columns untouched.

Feast defines what is joined (the registry's views, entities, TTLs, sources and
services) and computes on-demand features (``OnDemandFeatureView.transform_arrow``,
what Feast's own retrieval job runs). The as-of join itself is done here, with
``pandas.merge_asof`` over the source's parquet parts, because Feast 0.67's Dask
retrieval (``get_historical_features`` on a file source) gets it wrong in ways a
training set cannot live with:

- it drops an entity row whose candidate rows are all outside the TTL or all later
  than the row's time, instead of returning nulls, and returns rows in its own order;
- it keeps one entity row per join keys and time, keyed on the *first* view's join
  keys: two transactions of one user at the same instant at two merchants come back
  as one;
- it breaks event-time ties by sorting on created time and then, unstably, on event
  time: a correction wins or loses at random (most ties resolved wrongly in tests);
- with more than one parquet part (Berg's append-only store writes one per push) it
  raises ``NotImplementedError`` from Dask when any entity key has no rows at all,
  and its cost grows with the number of parts (20 s for 4,000 rows in 400 parts).

**strictly_before.** The features service pushes a user row at a transaction's event
time ``t`` that *includes* that transaction; the scorer, serving the transaction,
sees only the state before it. Training must match serving, so by default the join is
made at ``t`` minus one microsecond (the offline sources' resolution): a row stamped
``t`` is not visible to the row predicted at ``t``. The returned frame keeps the
caller's timestamps unchanged. Pass ``strictly_before=False`` for the state "as of
and including ``t``" (e.g. to compare with what was pushed online at ``t``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
from feast import FeatureStore, FeatureView, Field, FileSource
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.types import Bool, Float32, Float64, Int32, Int64

from berg.features.schema import (
    EVENT_TIMESTAMP,
    FEATURE_SERVICE,
    MERCHANT_AS_OF,
    MERCHANT_VIEW,
    USER_AS_OF,
    USER_VIEW,
)

__all__ = [
    "AS_OF_COLUMNS",
    "STRICTLY_BEFORE_OFFSET",
    "FeatureLayout",
    "build_training_frame",
    "describe_features",
]

AS_OF_COLUMNS: Mapping[str, str] = MappingProxyType({USER_VIEW: USER_AS_OF, MERCHANT_VIEW: MERCHANT_AS_OF})
"""Feature view -> its as-of feature: the Unix-seconds event time of the data a row summarises."""

STRICTLY_BEFORE_OFFSET = pd.Timedelta(microseconds=1)
"""How far before the caller's time the join is made with ``strictly_before`` (the sources' resolution)."""

_ROW_ID = "__berg_row_id"
_QUERY_TIME = "__berg_query_time"
_ROW_TIME = "__berg_row_time"
_TIME_DTYPE = "datetime64[ns, UTC]"


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
class _ViewFetch:
    view: FeatureView
    entity_columns: tuple[str, ...]
    features: tuple[str, ...]


@dataclass(frozen=True)
class _OnDemand:
    view: OnDemandFeatureView
    features: tuple[str, ...]


@dataclass(frozen=True)
class _Plan:
    fetches: tuple[_ViewFetch, ...]
    on_demand: tuple[_OnDemand, ...]
    outputs: dict[str, str]
    """Internal ``view__feature`` name -> output column, in output order."""
    dtypes: dict[str, str]
    """Internal name -> the pandas dtype it is returned as."""
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


def _requested_refs(store: FeatureStore, features: str | Sequence[str], extra: Sequence[str]) -> list[tuple[str, str]]:
    if isinstance(features, str):
        service = store.get_feature_service(features, allow_cache=True)
        refs = [(p.name, f.name) for p in service.feature_view_projections for f in p.features]
    else:
        refs = [_parse_ref(ref) for ref in features]
    refs += [_parse_ref(ref) for ref in extra]
    return list(dict.fromkeys(refs))


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
    fetched: dict[str, list[str]] = {}
    on_demand: dict[str, list[str]] = {}
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

    for view_name, feature in _requested_refs(store, features, extra_features):
        if view_name in views:
            fetch(view_name, feature)
            output(view_name, feature, fields_of(views[view_name])[feature])
        elif view_name in on_demand_views:
            odfv = on_demand_views[view_name]
            if feature not in fields_of(odfv):
                raise ValueError(f"on-demand feature view {view_name!r} has no feature {feature!r}")
            on_demand.setdefault(view_name, []).append(feature)
            for projection in odfv.source_feature_view_projections.values():
                for field in projection.features:
                    fetch(projection.name, field.name)
            output(view_name, feature, fields_of(odfv)[feature])
        else:
            raise ValueError(f"no feature view or on-demand view is named {view_name!r} (in '{view_name}:{feature}')")

    as_of_columns: dict[str, str] = {}
    for view_name in list(fetched):
        as_of = AS_OF_COLUMNS.get(view_name)
        if as_of is None or as_of not in fields_of(views[view_name]):
            continue
        as_of_columns[view_name] = as_of if not full_feature_names else _internal(view_name, as_of)
        if with_as_of and _internal(view_name, as_of) not in outputs:
            fetch(view_name, as_of)
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

    fetches = tuple(
        _ViewFetch(
            view=views[name],
            entity_columns=tuple(
                views[name].projection.join_key_map.get(column.name, column.name)
                for column in views[name].entity_columns
            ),
            features=tuple(wanted),
        )
        for name, wanted in fetched.items()
    )
    return _Plan(
        fetches=fetches,
        on_demand=tuple(_OnDemand(on_demand_views[name], tuple(wanted)) for name, wanted in on_demand.items()),
        outputs=outputs,
        dtypes=dtypes,
        layout=FeatureLayout(features=MappingProxyType(attribution), as_of=MappingProxyType(layout_as_of)),
    )


def describe_features(
    store: FeatureStore,
    features: str | Sequence[str] = FEATURE_SERVICE,
    *,
    extra_features: Sequence[str] = (),
    full_feature_names: bool = False,
) -> FeatureLayout:
    """Which view each feature column of a training frame comes from, and the as-of columns per view.

    Takes the same arguments as :func:`build_training_frame`; reads the registry only.
    """
    return _plan(store, features, extra_features, with_as_of=True, full_feature_names=full_feature_names).layout


def _read_source(
    store: FeatureStore, source: FileSource, columns: list[str], timestamp: str, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """A file source's rows with event times in [start, end], read as one parquet dataset of its parts."""
    uri = FileSource.get_uri_for_file_path(repo_path=store.config.repo_path, uri=source.file_options.uri)
    filesystem, path = FileSource.create_filesystem_and_path(str(uri), source.file_options.s3_endpoint_override)
    dataset = pads.dataset(str(path), filesystem=filesystem, format="parquet")
    kind = dataset.schema.field(timestamp).type
    window = (pads.field(timestamp) >= pa.scalar(start.floor("us").to_pydatetime(), kind)) & (
        pads.field(timestamp) <= pa.scalar(end.ceil("us").to_pydatetime(), kind)
    )
    return dataset.to_table(columns=columns, filter=window).to_pandas()


def _view_rows(store: FeatureStore, fetch: _ViewFetch, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The view's source rows with event times in [start, end], ordered by event time, then created time."""
    source = fetch.view.batch_source
    if not isinstance(source, FileSource) or source.field_mapping:
        raise ValueError(f"feature view {fetch.view.name!r}: only a file source without field mapping is supported")
    keys = [column.name for column in fetch.view.entity_columns]
    timestamp, created = source.timestamp_field, source.created_timestamp_column
    order = [timestamp, created] if created else [timestamp]
    rows = _read_source(store, source, [*keys, *order, *fetch.features], timestamp, start, end)
    rows = rows.dropna(subset=[*keys, timestamp])
    # merge_asof takes the last of several rows with the same event time: ordering by created
    # time makes a correction win. (Feast's Dask retrieval sorts by created time and then, with
    # an unstable sort, by event time: a correction wins or loses at random.)
    rows = rows.sort_values(order, kind="stable", na_position="first")
    rows = rows.rename(columns=dict(zip(keys, fetch.entity_columns, strict=True)))
    rows[_ROW_TIME] = pd.to_datetime(rows[timestamp], utc=True).astype(_TIME_DTYPE)
    return rows[[*fetch.entity_columns, _ROW_TIME, *fetch.features]]


def _fetch_view(store: FeatureStore, fetch: _ViewFetch, query_time: pd.Series, entities: pd.DataFrame) -> pd.DataFrame:
    """One feature view's values for every caller row (positional, RangeIndex), nulls where none."""
    missing = [column for column in fetch.entity_columns if column not in entities.columns]
    if missing:
        raise ValueError(f"feature view {fetch.view.name!r} joins on {missing}, which the entity frame lacks")
    keys = pd.DataFrame({column: entities[column].to_numpy() for column in fetch.entity_columns})
    keys[_QUERY_TIME] = query_time.astype(_TIME_DTYPE).to_numpy()
    valid = keys.notna().all(axis=1).to_numpy()
    names = [_internal(fetch.view.name, feature) for feature in fetch.features]
    empty = pd.DataFrame(index=keys.index, columns=names, dtype="float64")
    if not valid.any():
        return empty

    # One lookup per distinct (join keys, time), tagged with a row id to join back by.
    distinct = keys[valid]
    query_id = distinct.groupby(list(distinct.columns), sort=False).ngroup().to_numpy()
    first = ~distinct.duplicated().to_numpy()
    query = distinct[first].copy()
    query[_ROW_ID] = query_id[first]

    ttl = fetch.view.ttl if fetch.view.ttl and fetch.view.ttl.total_seconds() > 0 else None
    earliest = query[_QUERY_TIME].min()
    start = earliest - ttl if ttl is not None else pd.Timestamp(0, tz="UTC")
    rows = _view_rows(store, fetch, start, query[_QUERY_TIME].max())
    if rows.empty:
        return empty
    for column in fetch.entity_columns:
        if rows[column].dtype != query[column].dtype:
            rows[column] = rows[column].astype(object)
            query[column] = query[column].astype(object)
    joined = pd.merge_asof(
        query.sort_values(_QUERY_TIME, kind="stable"),
        rows.rename(columns=dict(zip(fetch.features, names, strict=True))),
        left_on=_QUERY_TIME,
        right_on=_ROW_TIME,
        by=list(fetch.entity_columns),
        direction="backward",
        allow_exact_matches=True,
        tolerance=pd.Timedelta(ttl) if ttl is not None else None,
    )
    result = joined.drop_duplicates(subset=_ROW_ID, keep="last").set_index(_ROW_ID)[names]

    row_query = pd.Series(-1, index=keys.index, dtype="int64")
    row_query[valid] = query_id
    return result.reindex(row_query.to_numpy()).set_axis(keys.index)


def _on_demand_values(odfv: _OnDemand, inputs: pd.DataFrame) -> pd.DataFrame:
    """Run an on-demand view's transformation over request columns and its source features."""
    table = pa.Table.from_pandas(inputs, preserve_index=False)
    transformed = odfv.view.transform_arrow(table, full_feature_names=False).to_pandas()
    return pd.DataFrame(
        {_internal(odfv.view.name, feature): transformed[feature].to_numpy() for feature in odfv.features},
        index=inputs.index,
    )


def build_training_frame(
    store: FeatureStore,
    entities: pd.DataFrame,
    features: str | Sequence[str] = FEATURE_SERVICE,
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
    row's request columns and those values. Reads the registry and the views' parquet
    sources; each view's source is read once, for the time range the frame needs.

    Args:
        store: A Feast store with Berg's definitions applied (:func:`berg.features.store.prepare_store`).
        entities: One row per prediction: the join keys the views need (``user_id``,
            ``merchant_id``), the time column, the request columns of on-demand views
            (``amount``, ``event_unix``), and anything else (labels, ids), passed through.
            A tz-naive time is read as UTC.
        features: A feature service name, or feature references (``"view:feature"``).
        extra_features: More references, added to ``features``.
        timestamp_column: The column with each row's prediction time.
        strictly_before: Join at the row's time minus one microsecond, so a feature row
            stamped exactly at the prediction time (which includes the predicted event)
            is not used: what the online scorer sees. The returned time column is
            unchanged either way.
        with_as_of: Also return each feature view's as-of feature (:data:`AS_OF_COLUMNS`)
            that a requested feature rests on, for :func:`berg.features.leakage.check_leakage`.
        full_feature_names: Name columns ``view__feature`` instead of ``feature``.

    Returns:
        ``entities`` (same index, order and columns) followed by the feature columns:
        integers as pandas ``Int64``, floats as ``float64``, nulls as ``<NA>``/``NaN``.

    Raises:
        ValueError: for an unknown view or feature, a missing join key, time or request
            column, or a feature column whose name the entity frame already uses.
    """
    plan = _plan(store, features, extra_features, with_as_of=with_as_of, full_feature_names=full_feature_names)
    if timestamp_column not in entities.columns:
        raise ValueError(f"the entity frame has no time column {timestamp_column!r}")
    clashing = [column for column in plan.outputs.values() if column in entities.columns]
    if clashing:
        raise ValueError(f"the entity frame already has columns named like features: {clashing}")
    for odfv in plan.on_demand:
        absent = [name for name in odfv.view.get_request_data_schema() if name not in entities.columns]
        if absent:
            raise ValueError(f"on-demand feature view {odfv.view.name!r} needs the request columns {absent}")

    positional = entities.reset_index(drop=True)
    query_time = pd.to_datetime(positional[timestamp_column], utc=True)
    if strictly_before:
        query_time = query_time - STRICTLY_BEFORE_OFFSET

    values = pd.DataFrame(index=positional.index)
    for fetch in plan.fetches:
        fetched = _fetch_view(store, fetch, query_time, positional)
        for column in fetched.columns:
            values[column] = fetched[column]
    for odfv in plan.on_demand:
        request = list(odfv.view.get_request_data_schema())
        sources = [
            _internal(projection.name, field.name)
            for projection in odfv.view.source_feature_view_projections.values()
            for field in projection.features
        ]
        inputs = pd.concat([positional[request], values[sources]], axis=1)
        computed = _on_demand_values(odfv, inputs)
        for column in computed.columns:
            values[column] = computed[column]

    out = entities.copy()
    for name, column in plan.outputs.items():
        series = values[name]
        dtype = plan.dtypes.get(name)
        if dtype is not None:
            series = series.astype("float64").astype(dtype) if dtype == "Int64" else series.astype(dtype)
        out[column] = series.array
    return out
