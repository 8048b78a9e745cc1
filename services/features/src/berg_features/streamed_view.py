"""One streaming view as the features service computes it: its aggregator, and what the service keeps per entity.

The handler holds one :class:`StreamedView` per streaming view the use case declares. Each reads
its own entity key and fields of the scored events, keeps its own aggregator (windows, lateness
against its own entities' watermarks, replays) and pushes its rows to its own push source. What
the handler remembers per entity to push correctly (the newest row online and the stamp it went
out with, the partitions its events came from) is per view too: an entity of one view is no
entity of another. What it forgot (an entity evicted while idle, a restart) it asks the online store
back for: the stamp of the row it holds, which the next push must exceed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

from berg.features.aggregation import AggregationView
from berg.features.feature_set import CREATED_TIMESTAMP, EVENT_TIMESTAMP, StreamingView
from berg_features.aggregates import WindowAggregator, WindowEvent, WindowRow, event_of
from berg_features.metrics import StreamingViewMetrics

__all__ = ["FeastTarget", "PushTarget", "StreamedView", "event_from_scored", "from_us", "rows_frame", "to_us"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def event_from_scored(view: AggregationView, event: Any) -> WindowEvent:
    """What ``view`` reads of a scored event (any contract with ``event_id`` and ``event_time``)."""
    return event_of(view, to_us(event.event_time), event.event_id, event)


def event_from_log(view: AggregationView, row: Any) -> WindowEvent:
    """What ``view`` reads of a scored event read back from the label store (a row of its frame)."""
    return event_of(view, to_us(row.event_time.to_pydatetime()), row.event_id, row)


def rows_frame(
    rows: Iterable[WindowRow], key: str, created: datetime, stamps: Sequence[int] | None = None
) -> pd.DataFrame:
    """Feature rows as the push source takes them, keyed by ``key``; ``stamps`` replace the rows' event times."""
    rows = list(rows)
    frame = pd.DataFrame([row.features for row in rows])
    frame.insert(0, key, [row.key for row in rows])
    times = stamps if stamps is not None else [row.at_us for row in rows]
    frame[EVENT_TIMESTAMP] = pd.to_datetime(list(times), unit="us", utc=True)
    frame[CREATED_TIMESTAMP] = pd.Timestamp(created)
    return frame


class PushTarget(Protocol):
    """Where rows are pushed and what the online store holds: Feast's store (:class:`FeastTarget`), or a
    test's recorder."""

    def push(self, push_source_name: str, df: pd.DataFrame, *, to: PushMode) -> None: ...

    def online_stamps(self, view: StreamingView, keys: Sequence[str]) -> dict[str, int]:
        """Per key of ``keys`` whose row of ``view`` the online store holds, that row's event timestamp (µs)."""
        ...


class FeastTarget:
    """A Feast ``FeatureStore`` as the handler's :class:`PushTarget`."""

    READ_CHUNK = 1_000
    """Entities per online read: a restart asks for every entity it restored."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    def push(self, push_source_name: str, df: pd.DataFrame, *, to: PushMode) -> None:
        self.store.push(push_source_name, df, to=to)

    def online_stamps(self, view: StreamingView, keys: Sequence[str]) -> dict[str, int]:
        feature = view.aggregation.feature_names[0]
        stamps: dict[str, int] = {}
        for start in range(0, len(keys), self.READ_CHUNK):
            chunk = keys[start : start + self.READ_CHUNK]
            response = self.store.get_online_features(
                features=[f"{view.name}:{feature}"], entity_rows=[{view.entity.key: key} for key in chunk]
            )
            # The proto, not to_dict: to_dict's timestamps are whole seconds; a correction's stamp
            # differs from the row's by microseconds.
            result = response.proto.results[list(response.proto.metadata.feature_names.val).index(feature)]
            for key, status, stamp in zip(chunk, result.statuses, result.event_timestamps, strict=True):
                if status == FieldStatus.PRESENT:
                    stamps[key] = stamp.ToMicroseconds()
        return stamps


class StreamedView:
    """A streaming view's aggregator, its series of the metrics and the handler's bookkeeping per entity.

    Args:
        view: the declared view; its aggregation must be the aggregator's.
        aggregator: computes the view's rows.
        metrics: the view's series (:meth:`berg_features.metrics.FeaturesMetrics.streaming_view`).
    """

    def __init__(self, view: StreamingView, aggregator: WindowAggregator, metrics: StreamingViewMetrics) -> None:
        if aggregator.view != view.aggregation:
            raise ValueError(
                f"streaming view {view.name!r}: the aggregator computes {aggregator.view.name!r}, not this view"
            )
        self.view = view
        self.aggregator = aggregator
        self.metrics = metrics
        self.key = view.aggregation.key
        """The scored events' field the view is keyed by."""
        self.pending_reload: set[str] = set()
        """Entities forgotten while their events may still come (a failed batch, a partition of theirs
        revoked while others stay): restored from the label store before the next batch."""
        self._online_at: dict[str, int] = {}
        """Per entity, the event time of the newest row pushed online."""
        self._online_stamp: dict[str, int] = {}
        """Per entity, the event timestamp that row was pushed with (see :meth:`push`)."""
        self._partitions: dict[str, set[int]] = {}
        """Per entity, the scored topic's partitions its held events came from (one, when the view is keyed
        by the stream's record key; several otherwise)."""

    @property
    def name(self) -> str:
        return self.view.name

    def event_of(self, scored: Any) -> WindowEvent:
        """What this view reads of a scored event."""
        return event_from_scored(self.view.aggregation, scored)

    def events_of_log(self, frame: pd.DataFrame) -> list[WindowEvent]:
        """What this view reads of the scored events of a label store frame."""
        return [event_from_log(self.view.aggregation, row) for row in frame.itertuples(index=False)]

    def note_accepted(self, entity: str, partition: int) -> None:
        self._partitions.setdefault(entity, set()).add(partition)

    def note_restored(self, frame: pd.DataFrame, store: PushTarget) -> None:
        """What is kept per entity, for the entities whose events ``frame`` (from the label store) holds.

        The stamp of an entity's online row is the store's: corrections of the newest row went out
        with stamps after its event time, which the label store does not know."""
        for entity, partition in zip(frame[self.key], frame["source_partition"], strict=True):
            self._partitions.setdefault(str(entity), set()).add(int(partition))
        restored = {str(entity) for entity in frame[self.key]}
        forgotten = sorted(restored - self._online_stamp.keys())
        held = store.online_stamps(self.view, forgotten) if forgotten else {}
        for entity in restored:
            watermark = self.aggregator.watermark(entity)
            if watermark is not None:
                self._online_at[entity] = max(self._online_at.get(entity, watermark), watermark)
                self._online_stamp[entity] = max(
                    self._online_stamp.get(entity, watermark), held.get(entity, watermark), watermark
                )
        self.metrics.entities_in_state.set(self.aggregator.entities)

    def push(self, store: PushTarget, rows: Iterable[WindowRow], created: datetime) -> None:
        """Push every changed row offline and, per entity, the newest one online.

        A row older than what the online store holds for its entity is never pushed online (SQLite's
        online store would let it win)."""
        rows = list(rows)
        if not rows:
            return
        offline = rows_frame(rows, self.key, created)
        started = time.perf_counter()
        store.push(self.view.push_source, offline, to=PushMode.OFFLINE)
        self.metrics.push_seconds_offline.observe(time.perf_counter() - started)
        self.metrics.rows_pushed_offline.inc(len(offline))
        newest: dict[str, WindowRow] = {}
        for row in rows:
            if row.at_us >= self._online_at.get(row.key, row.at_us) and (
                row.key not in newest or row.at_us >= newest[row.key].at_us
            ):
                newest[row.key] = row
        if not newest:
            return
        # Online, each entity's stamps strictly increase: Feast's Redis store skips a row whose
        # event time is not newer than the stored one, so a correction of the latest row (same
        # event time, after a late event) goes out one microsecond after the last stamp.
        rows_out = list(newest.values())
        stamps = [
            max(row.at_us, self._online_stamp[row.key] + 1) if row.key in self._online_stamp else row.at_us
            for row in rows_out
        ]
        started = time.perf_counter()
        store.push(self.view.push_source, rows_frame(rows_out, self.key, created, stamps), to=PushMode.ONLINE)
        self.metrics.push_seconds_online.observe(time.perf_counter() - started)
        self.metrics.rows_pushed_online.inc(len(rows_out))
        for row, stamp in zip(rows_out, stamps, strict=True):
            self._online_at[row.key] = row.at_us
            self._online_stamp[row.key] = stamp

    def forget_for_reload(self, entities: Iterable[str]) -> None:
        """Drop entities' state and restore them from the label store before the next batch (a failed batch)."""
        entities = set(entities)
        self.aggregator.forget(entities)
        self.pending_reload |= entities

    def evict_idle(self) -> None:
        """Drop the idle entities the aggregator evicts (what they held is stored)."""
        evicted = self.aggregator.evict_idle()
        self._drop(evicted)
        self.metrics.entities_evicted.inc(len(evicted))

    def on_revoked(self, gone: set[int]) -> None:
        """Drop the entities with events from the revoked partitions ``gone``.

        An entity whose events also came from partitions this instance keeps (a view keyed by another
        field than the stream's record key) is restored from the label store before the next batch:
        its events keep coming."""
        entities = [entity for entity, partitions in self._partitions.items() if partitions & gone]
        staying = {entity for entity in entities if self._partitions[entity] - gone}
        self.aggregator.forget(entities)
        self._drop(entities)
        self.pending_reload |= staying

    def _drop(self, entities: Iterable[str]) -> None:
        for entity in entities:
            self._partitions.pop(entity, None)
            self._online_at.pop(entity, None)
            self._online_stamp.pop(entity, None)
