"""Feast's point-in-time join for one feature view, over the view's parquet source folder.

:func:`join_feature_view` gives each row of an entity frame (join keys and a time) the
view's feature values that were valid at that time, as Feast defines them:

- the view's latest source row (by event time, then created time: a correction wins
  over the row it replaces; a row without a created time loses to one with it) whose
  event time is at or before the row's time and no older than the view's TTL, both
  bounds inclusive (no TTL, or a zero one: no lower bound);
- with ``filter_by_created_timestamp``, only source rows created at or before the row's
  time are candidates (rows without a created time are not), so a later backfill does
  not leak into the past;
- every entity row gets a result, in the entity frame's order, null where there is no
  such row or where the row's join keys or time are null;
- the view's projection is respected: ``join_key_map`` renames the join keys the entity
  frame holds, and with ``full_feature_names`` a column is named
  ``<name alias or view name>__<feature>``, else ``<feature>``.

The source is read once per call, as one pyarrow dataset of its part files, for the
event-time range the frame needs (``[earliest time - TTL, latest time]``); the join is
a ``pandas.merge_asof`` per distinct (join keys, time) over the rows' keys and times
only, and the feature values are then taken from the arrow table by row position, so
they keep their source types (an integer column with nulls stays an integer column).

Berg's offline store (:class:`berg.features.offline_store.AppendOnlyFileOfflineStore`)
runs this for every requested view in ``get_historical_features``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
from feast import FeatureView, FileSource
from feast.feature_view import DUMMY_ENTITY_ID

from berg.features.parquet_parts import source_directory

__all__ = ["feature_column", "join_feature_view", "join_keys"]

_QUERY = "__berg_query"
_QUERY_TIME = "__berg_query_time"
_ROW_TIME = "__berg_row_time"
_ROW_CREATED = "__berg_row_created"
_POSITION = "__berg_position"
_RANK = "__berg_rank"
_TIME_DTYPE = "datetime64[ns, UTC]"
_NANOSECONDS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_CANDIDATE_BLOCK = 20_000
"""Distinct queries per block in the ``filter_by_created_timestamp`` join (bounds its memory)."""


def feature_column(view: FeatureView, feature: str, full_feature_names: bool) -> str:
    """The column Feast names ``feature`` of ``view`` in a retrieval result."""
    if not full_feature_names:
        return feature
    view_name: str = view.projection.name_to_use()  # type: ignore[no-untyped-call]  # Feast leaves it unannotated
    return f"{view_name}__{feature}"


def join_keys(view: FeatureView) -> list[str]:
    """The entity frame columns ``view`` joins on (its join keys, renamed by its projection's ``join_key_map``)."""
    return [
        view.projection.join_key_map.get(column.name, column.name)
        for column in view.entity_columns
        if column.name != DUMMY_ENTITY_ID
    ]


def join_feature_view(
    view: FeatureView,
    features: Sequence[str],
    entities: pd.DataFrame,
    *,
    repo_path: Path | str | None,
    timestamp_column: str,
    full_feature_names: bool = False,
    filter_by_created_timestamp: bool = False,
) -> pa.Table:
    """``view``'s point-in-time values of ``features`` for each row of ``entities``.

    Args:
        view: A feature view with a :class:`FileSource` batch source (a parquet file or
            a folder of parquet parts, local or on object storage) and no field mapping.
        features: Feature names of ``view``.
        entities: The join keys of ``view`` (:func:`join_keys`) and ``timestamp_column``;
            other columns are ignored. A tz-naive time is read as UTC.
        repo_path: The Feast repo path a relative source URI is resolved against.
        timestamp_column: The column with each row's time.
        full_feature_names: Name the columns ``<view>__<feature>`` (:func:`feature_column`).
        filter_by_created_timestamp: Ignore source rows created after the row's time.

    Returns:
        One column per feature (Feast's names, the source's arrow types), one row per
        entity row, in order; null where the view has no valid row.

    Raises:
        ValueError: for a source that is not a file source or has a field mapping, a
            join key or time column the frame lacks, or a feature the view or its
            source does not have.
    """
    source = view.batch_source
    if not isinstance(source, FileSource):
        raise ValueError(f"feature view {view.name!r}: only a FileSource batch source is supported")
    if source.field_mapping:
        raise ValueError(f"feature view {view.name!r}: a source with a field mapping is not supported")
    keys = join_keys(view)
    missing = [column for column in [*keys, timestamp_column] if column not in entities.columns]
    if missing:
        raise ValueError(f"feature view {view.name!r} joins on {missing}, which the entity frame lacks")
    known = {field.name for field in view.features}
    unknown = [feature for feature in features if feature not in known]
    if unknown:
        raise ValueError(f"feature view {view.name!r} has no features {unknown}")
    features = list(dict.fromkeys(features))
    names = [feature_column(view, feature, full_feature_names) for feature in features]

    chosen = _chosen_rows(view, source, keys, entities, repo_path, timestamp_column, filter_by_created_timestamp)
    values = chosen.values.select(features).take(pa.array(chosen.positions, mask=chosen.positions < 0))
    return values.rename_columns(names)


@dataclass(frozen=True)
class _Chosen:
    values: pa.Table
    """The source rows read."""
    positions: npt.NDArray[np.int64]
    """Per entity row, the position of its row in ``values``; -1 where none."""


def _chosen_rows(
    view: FeatureView,
    source: FileSource,
    keys: list[str],
    entities: pd.DataFrame,
    repo_path: Path | str | None,
    timestamp_column: str,
    filter_by_created_timestamp: bool,
) -> _Chosen:
    source_keys = [column.name for column in view.entity_columns if column.name != DUMMY_ENTITY_ID]
    query_time = pd.to_datetime(entities[timestamp_column], utc=True)
    lookups = pd.DataFrame({column: entities[column].to_numpy() for column in keys})
    lookups[_QUERY_TIME] = query_time.astype(_TIME_DTYPE).array
    valid = lookups.notna().all(axis=1).to_numpy()
    positions = np.full(len(lookups), -1, dtype=np.int64)
    ttl = pd.Timedelta(view.ttl) if view.ttl and view.ttl.total_seconds() > 0 else None
    if not valid.any():
        return _Chosen(_read_source(view, source, source_keys, repo_path, None), positions)

    # One lookup per distinct (join keys, time), numbered to map back to the entity rows.
    distinct = lookups[valid]
    query_of_row = distinct.groupby(list(distinct.columns), sort=False).ngroup().to_numpy()
    first = ~distinct.duplicated().to_numpy()
    queries = distinct[first].copy()
    queries[_QUERY] = query_of_row[first]
    queries = queries.sort_values(_QUERY_TIME, kind="stable")

    earliest, latest = queries[_QUERY_TIME].iloc[0], queries[_QUERY_TIME].iloc[-1]
    window = (earliest - ttl if ttl is not None else None, latest)
    table = _read_source(view, source, source_keys, repo_path, window)
    rows = _row_keys(table, source, source_keys, keys)
    if rows.empty:
        return _Chosen(table, positions)
    for column in keys:
        if rows[column].dtype != queries[column].dtype:
            rows[column] = rows[column].astype(object)
            queries[column] = queries[column].astype(object)

    if filter_by_created_timestamp and source.created_timestamp_column:
        picked = _latest_created_before(queries, rows, keys, ttl)
    else:
        picked = _latest_before(queries, rows, keys, ttl)
    position_of_query = np.full(len(queries), -1, dtype=np.int64)
    position_of_query[picked.index.to_numpy()] = picked.to_numpy()
    positions[valid] = position_of_query[query_of_row]
    return _Chosen(table, positions)


def _latest_before(queries: pd.DataFrame, rows: pd.DataFrame, keys: list[str], ttl: pd.Timedelta | None) -> pd.Series:
    """Query id -> position of its row: the last (in ``rows``' order) of its keys in [time - TTL, time]."""
    joined = pd.merge_asof(
        queries,
        rows[[*keys, _ROW_TIME, _POSITION]],
        left_on=_QUERY_TIME,
        right_on=_ROW_TIME,
        by=keys or None,
        direction="backward",
        allow_exact_matches=True,
        tolerance=ttl,
    )
    found = joined[joined[_POSITION].notna()]
    return pd.Series(found[_POSITION].to_numpy(dtype=np.int64), index=found[_QUERY].to_numpy())


def _latest_created_before(
    queries: pd.DataFrame, rows: pd.DataFrame, keys: list[str], ttl: pd.Timedelta | None
) -> pd.Series:
    """Like :func:`_latest_before`, among rows also created at or before the query's time.

    Two conditions on two columns are no as-of join: each block of queries (in time
    order) is joined with every row of its keys in the block's time range, filtered,
    and the latest kept. Memory grows with the rows per key within the TTL.
    """
    rows = rows.assign(**{_RANK: np.arange(len(rows))})
    row_times = rows[_ROW_TIME].to_numpy(dtype="datetime64[ns]")  # UTC
    picked: list[pd.Series] = []
    for start in range(0, len(queries), _CANDIDATE_BLOCK):
        block = queries.iloc[start : start + _CANDIDATE_BLOCK]
        low = block[_QUERY_TIME].iloc[0] - ttl if ttl is not None else None
        first = int(np.searchsorted(row_times, low.to_datetime64(), side="left")) if low is not None else 0
        last = int(np.searchsorted(row_times, block[_QUERY_TIME].iloc[-1].to_datetime64(), side="right"))
        candidates = rows.iloc[first:last]
        pairs = block.merge(candidates, on=keys) if keys else block.merge(candidates, how="cross")
        visible = (pairs[_ROW_TIME] <= pairs[_QUERY_TIME]) & (pairs[_ROW_CREATED] <= pairs[_QUERY_TIME])
        if ttl is not None:
            visible &= pairs[_ROW_TIME] >= pairs[_QUERY_TIME] - ttl
        best = pairs[visible].groupby(_QUERY)[_RANK].max()
        picked.append(pd.Series(rows[_POSITION].to_numpy()[best.to_numpy()], index=best.index.to_numpy()))
    return pd.concat(picked) if picked else pd.Series(dtype=np.int64)


def _read_source(
    view: FeatureView,
    source: FileSource,
    source_keys: list[str],
    repo_path: Path | str | None,
    window: tuple[pd.Timestamp | None, pd.Timestamp] | None,
) -> pa.Table:
    """The source's rows with event times in ``window`` (a superset, to the source's time unit); none without one."""
    filesystem, path = source_directory(source, repo_path)
    dataset = pads.dataset(path, filesystem=filesystem, format="parquet")
    timestamp, created = source.timestamp_field, source.created_timestamp_column
    wanted = [*source_keys, timestamp, *([created] if created else []), *(field.name for field in view.features)]
    wanted = list(dict.fromkeys(wanted))
    absent = [column for column in wanted if column not in dataset.schema.names]
    if absent:
        raise ValueError(f"feature view {view.name!r}: its source {path!r} has no columns {absent}")
    if window is None:
        return dataset.schema.empty_table().select(wanted)
    start, end = window
    kind = dataset.schema.field(timestamp).type
    condition = None
    if pa.types.is_timestamp(kind):
        # Bounds in the column's own unit, rounded outwards: the read is a superset, the join decides.
        factor = _NANOSECONDS[kind.unit]
        condition = pads.field(timestamp) <= pa.scalar(-(-end.value // factor), type=kind)
        if start is not None:
            condition &= pads.field(timestamp) >= pa.scalar(start.value // factor, type=kind)
    return dataset.to_table(columns=wanted, filter=condition)


def _row_keys(table: pa.Table, source: FileSource, source_keys: list[str], keys: list[str]) -> pd.DataFrame:
    """The rows' join keys (renamed ``keys``), event and created times and positions in ``table``, in join order.

    Ordered by event time, then created time (a row without one first), stably: the
    last row of a key at or before a time is the one Feast's definition picks.
    """
    timestamp, created = source.timestamp_field, source.created_timestamp_column
    rows = pd.DataFrame({key: table[name].to_pandas() for key, name in zip(keys, source_keys, strict=True)})
    rows[_ROW_TIME] = pd.to_datetime(table[timestamp].to_pandas(), utc=True).astype(_TIME_DTYPE)
    if created:
        rows[_ROW_CREATED] = pd.to_datetime(table[created].to_pandas(), utc=True).astype(_TIME_DTYPE)
    rows[_POSITION] = np.arange(len(rows), dtype=np.int64)
    rows = rows[rows[[*keys, _ROW_TIME]].notna().all(axis=1).to_numpy()]
    # np.lexsort is stable and sorts by its last key first; a null created time is the smallest int64.
    order_by = [rows[_ROW_CREATED], rows[_ROW_TIME]] if created else [rows[_ROW_TIME]]
    order = np.lexsort([column.to_numpy(dtype="datetime64[ns]").view(np.int64) for column in order_by])
    return rows.iloc[order].reset_index(drop=True)
