"""The rows of a snapshot view (:class:`~berg.features.feature_set.SnapshotView`), computed from the label store.

A snapshot view aggregates, per key and at event-time boundaries ``s`` every ``view.every``, the
scored events of every partition together with labels that arrive much later, on other partitions;
as a batch view over the shared label store it is exact however many instances consume, and point-in-time
correct by construction. The snapshot at ``s`` reads only events with event time in ``(s - window, s]``
(each aggregate its own window) and only labels known at ``s``: arrived by then
(:data:`~berg.features.label_store.ARRIVAL_TIME` ``<= s``, not the label's own event time, so a label delivered
late never changes a snapshot served before it arrived); the first label of an event to arrive counts.

Its row is stamped (Feast's event timestamp, and the view's ``available`` column) when it became
available, not at ``s``: the features service computes it once every source partition is past ``s``
plus the allowed lateness, that is at the event time of the slowest partition's first event at or after
``s + lateness`` (:func:`snapshot_availability`). Events of the faster partitions after ``s + lateness``
are scored before that, with the previous snapshot; training joins by the stamp, so it sees what serving
saw. The view's ``as_of`` column keeps ``s``, the data's as-of time.

Pure: frames in, a frame out. Column names come from the view and the use case's label join.

Example:
    >>> rows = snapshot_rows(view, use_case.label_join, events, labels, snapshot_times(start, end, view.every))
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from berg.features.feature_set import EVENT_TIMESTAMP, SnapshotAggregate, SnapshotView
from berg.features.label_store import ARRIVAL_TIME
from berg.usecase import LabelJoin

__all__ = [
    "availability_changed_after",
    "next_snapshot_after",
    "snapshot_availability",
    "snapshot_columns",
    "snapshot_rows",
    "snapshot_times",
    "visible_snapshots",
]

_PARTITION = "source_partition"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Internal columns of the joined frame: the first label's event time and its verdict.
_LABEL_TIME = "__label_time"
_POSITIVE = "__positive"


def snapshot_times(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """Snapshot boundaries ``s`` with ``start <= s <= end``: the multiples of ``every`` since the epoch."""
    first = _EPOCH + -((_EPOCH - start) // every) * every
    times = []
    current = first
    while current <= end:
        times.append(current)
        current += every
    return times


def next_snapshot_after(moment: datetime, every: timedelta) -> datetime:
    """The first snapshot boundary strictly after ``moment``."""
    return _EPOCH + ((moment - _EPOCH) // every + 1) * every


def _times_by_partition(events: pd.DataFrame, partitions: Collection[int]) -> list[np.ndarray]:
    """Each partition's event times, sorted, in microseconds since the epoch."""
    micros = (pd.to_datetime(events["event_time"], utc=True) - _EPOCH) // _MICROSECOND
    in_partition = events[_PARTITION].to_numpy()
    return [np.sort(micros[in_partition == partition].to_numpy(dtype="int64")) for partition in partitions]


def snapshot_availability(
    events: pd.DataFrame,
    snapshot_times: Sequence[datetime],
    *,
    lateness: timedelta,
    partitions: Collection[int],
) -> list[datetime | None]:
    """When each snapshot became available: ``max`` over ``partitions`` of the partition's earliest
    event time at or after ``s + lateness`` (the moment the low watermark passed ``s``).

    ``None`` where some partition has no such event among ``events``: not available (yet).

    Args:
        events: label-store scored events (``event_time``, ``source_partition``), every one of
            ``partitions`` with event time from the first ``s + lateness`` on, up to as far as they are read.
        snapshot_times: aware datetimes.
        lateness: the allowed lateness.
        partitions: the source partitions the watermark is taken over.
    """
    if not partitions:
        return [None] * len(snapshot_times)
    by_partition = _times_by_partition(events, partitions)
    result: list[datetime | None] = []
    for snapshot in snapshot_times:
        crossing = (snapshot + lateness - _EPOCH) // _MICROSECOND
        firsts = [times[index] for times in by_partition if (index := np.searchsorted(times, crossing)) < len(times)]
        crossed = len(firsts) == len(by_partition)
        result.append(_EPOCH + int(max(firsts)) * _MICROSECOND if crossed else None)
    return result


def availability_changed_after(
    events: pd.DataFrame, starts: Sequence[datetime], *, partitions: Collection[int]
) -> list[datetime | None]:
    """For events that arrived from each of ``starts`` on: from when on they may have changed an
    availability, as the earliest over ``partitions`` of the partition's latest event before the start.

    An event at ``t`` in partition ``p`` moves the crossings at ``x`` in ``(previous, t]`` (``previous``:
    ``p``'s event before it) from ``p``'s next event to ``t``; whatever its partition, that previous one
    is no earlier than the returned time. ``None`` where a partition has no event before the start among
    ``events`` (read further back; from the store's first, everything).
    """
    by_partition = _times_by_partition(events, partitions)
    result: list[datetime | None] = []
    for start in starts:
        before = (start - _EPOCH) // _MICROSECOND
        lasts = [times[index - 1] for times in by_partition if (index := np.searchsorted(times, before)) > 0]
        complete = bool(lasts) and len(lasts) == len(by_partition)
        result.append(_EPOCH + int(min(lasts)) * _MICROSECOND if complete else None)
    return result


def visible_snapshots(
    snapshot_times: Sequence[datetime], available: Sequence[datetime | None], next_available: datetime | None
) -> list[tuple[datetime, datetime]]:
    """The snapshots to store, with their stamps: the available ones, less each that became available
    together with the next one.

    When the slowest partition jumps over several snapshot times at once (a gap in its traffic), they
    all become available at the same moment: the online store then holds the newest of them, and a
    training join could not tell rows with one stamp apart. So only the newest of equal stamps is a row.

    Args:
        snapshot_times: consecutive snapshot times.
        available: their availability (:func:`snapshot_availability`).
        next_available: the availability of the snapshot after the last (``None``: not known yet, the
            last one stays; the job recomputes its day when the watermark moves on).
    """
    following = [*available[1:], next_available]
    return [
        (at, stamp)
        for at, stamp, after in zip(snapshot_times, available, following, strict=True)
        if stamp is not None and stamp != after
    ]


def snapshot_columns(view: SnapshotView) -> list[str]:
    """The columns of :func:`snapshot_rows`: the key, the aggregates, ``as_of``, ``available``, the event timestamp."""
    return [
        view.entity.key,
        *(aggregate.name for aggregate in view.aggregates),
        view.as_of,
        view.available,
        EVENT_TIMESTAMP,
    ]


def _input_columns(view: SnapshotView) -> list[str]:
    fields = {aggregate.field for aggregate in view.aggregates if aggregate.field is not None}
    return [view.entity.key, *sorted(fields - {view.entity.key})]


def _with_first_labels(view: SnapshotView, join: LabelJoin, events: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The events' id, time and read columns, with their first label's arrival and verdict (``NaT``/False: none)."""
    frame = events[[join.event_id, "event_time", *_input_columns(view)]]
    # The first label to arrive (ties: the label's id): what serving's snapshot knew first.
    first_label = labels.sort_values([ARRIVAL_TIME, "event_id"], kind="stable").drop_duplicates(join.subject_id)
    known = first_label[[join.subject_id, ARRIVAL_TIME, join.target]].rename(
        columns={join.subject_id: join.event_id, ARRIVAL_TIME: _LABEL_TIME, join.target: _POSITIVE}
    )
    frame = frame.merge(known, on=join.event_id, how="left")
    # Without any label the merged columns come back untyped.
    frame[_LABEL_TIME] = pd.to_datetime(frame[_LABEL_TIME], utc=True)
    frame[_POSITIVE] = frame[_POSITIVE].astype("boolean").fillna(False).astype(bool)
    return frame


def _ratio(numerator: pd.Series, count: pd.Series) -> np.ndarray:
    """``numerator / count`` per key, NaN where the count is 0."""
    return np.where(count > 0, numerator / count.where(count > 0, 1), np.nan)


def _sums(aggregate: SnapshotAggregate, index: int, window: pd.DataFrame, at: pd.Timestamp) -> dict[str, pd.Series]:
    """The per-event terms whose sums per key give ``aggregate``, named after its position."""
    inside = window["event_time"] > at - pd.Timedelta(aggregate.window)
    terms = {f"count_{index}": inside.astype("int64")}
    if aggregate.function == "mean":
        assert aggregate.field is not None  # a mean names its field (SnapshotAggregate checks it)
        terms[f"sum_{index}"] = window[aggregate.field].where(inside, 0.0)
    elif aggregate.function in ("positive_share", "labels_known"):
        known = window[_LABEL_TIME].notna() & (window[_LABEL_TIME] <= at) & inside
        if aggregate.function == "positive_share":
            known = known & window[_POSITIVE]
        terms[f"sum_{index}"] = known.astype("int64")
    return terms


def _value(aggregate: SnapshotAggregate, index: int, sums: pd.DataFrame) -> np.ndarray:
    count = sums[f"count_{index}"]
    if aggregate.function == "count":
        return np.asarray(count, dtype=np.int64)
    if aggregate.function == "labels_known":
        return np.asarray(sums[f"sum_{index}"], dtype=np.int64)
    return _ratio(sums[f"sum_{index}"], count).astype("float64")


def snapshot_rows(
    view: SnapshotView,
    join: LabelJoin,
    events: pd.DataFrame,
    labels: pd.DataFrame,
    snapshot_times: Sequence[datetime],
    *,
    available: Sequence[datetime] | None = None,
) -> pd.DataFrame:
    """One row per (snapshot, key value with an event in the view's window before it).

    Each aggregate is over its own window ``(s - window, s]``: ``count`` of events, ``mean`` of its field
    (NaN without events in its window), ``positive_share`` (events whose first label was known at ``s`` and
    positive, over events; NaN without events), ``labels_known`` (events whose label was known at ``s``).

    Args:
        view: the snapshot view.
        join: how labels meet events (the events' id field, the labels' subject and target fields).
        events: label-store scored events (``event_time``, the id, the view's key and fields).
        labels: label-store labels (``event_time``, the subject and target fields).
        snapshot_times: aware datetimes.
        available: when each snapshot became available (:func:`snapshot_availability`), in the order of
            ``snapshot_times``; ``None``: at its own time.

    Returns:
        :func:`snapshot_columns`: the key, the aggregates, ``view.as_of`` (the snapshot time, Unix seconds),
        ``view.available`` (when it became available, Unix seconds) and ``event_timestamp`` (the same moment).
    """
    if available is None:
        available = snapshot_times
    if len(available) != len(snapshot_times):
        raise ValueError(f"{len(available)} availability times for {len(snapshot_times)} snapshots")
    key, reach = view.entity.key, pd.Timedelta(view.window)
    frame = _with_first_labels(view, join, events, labels)
    frames = []
    for snapshot, available_at in zip(snapshot_times, available, strict=True):
        at = pd.Timestamp(snapshot)
        stamp = pd.Timestamp(available_at)
        if stamp < at:
            raise ValueError(f"the snapshot at {at} cannot be available before it, at {stamp}")
        window = frame[(frame["event_time"] > at - reach) & (frame["event_time"] <= at)]
        if window.empty:
            continue
        terms: dict[str, pd.Series] = {key: window[key]}
        for index, aggregate in enumerate(view.aggregates):
            terms.update(_sums(aggregate, index, window, at))
        sums = pd.DataFrame(terms).groupby(key, sort=True).sum()
        rows = pd.DataFrame(
            {
                key: sums.index.astype(str),
                **{aggregate.name: _value(aggregate, index, sums) for index, aggregate in enumerate(view.aggregates)},
                view.as_of: at.timestamp(),
                view.available: stamp.timestamp(),
                EVENT_TIMESTAMP: stamp,
            }
        )
        frames.append(rows)
    if not frames:
        return pd.DataFrame(columns=snapshot_columns(view))
    return pd.concat(frames, ignore_index=True)
