"""The features service's batch handler: aggregate, push to Feast, store labels.

For each micro-batch from the use case's two valid topics (its scored events and
their labels):

1. decode with the topic's contract (a record that fails it is dead-lettered, as
   everywhere);
2. read back from the label store the history of entities the aggregator forgot
   (evicted while idle, or not restored after a restart) that the batch needs;
3. add each scored event to its entity's aggregates (the streaming view's key); an
   event later than the allowed lateness is dead-lettered with reason
   ``late_event``; a replay is counted and changes nothing; then compute every
   changed row once;
4. push every changed row to the offline store and, per entity, the newest row to
   the online store through the push source; a row older than what the online
   store holds for that entity is never pushed online (SQLite's online store would
   let it win);
5. append the events and labels to the label store (which notes what arrived, for
   the snapshot jobs), then evict idle entities now that what they hold is stored;
6. return, and the loop commits the offsets.

A crash anywhere before 6 redelivers the batch. State is rebuilt from the label
store (step 5's log), so an event logged before the crash is a replay afterwards,
and one not logged is aggregated again with the same result (its rows are pushed
again, identical). A handler failure rolls the batch's entities back to the label
store the same way before the batch is retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow.dataset as ds
from feast import FeatureStore
from feast.data_source import PushMode
from pydantic import BaseModel

from berg.features.aggregation import AggregationView
from berg.features.feature_set import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from berg.features.label_store import LabelStore
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.decoding import Decoded, RecordRejected, Rejected, decode_contract, split_batch
from berg.kafka.records import RawRecord
from berg_features.aggregates import SECOND, Outcome, WindowAggregator, WindowEvent, WindowRow, event_of
from berg_features.metrics import FeaturesMetrics

__all__ = ["FeaturesHandler", "Source", "event_from_scored", "rows_frame"]

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_us(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def event_from_scored(view: AggregationView, event: Any) -> WindowEvent:
    """What ``view`` reads of a scored event (any contract with ``event_id`` and ``event_time``)."""
    return event_of(view, to_us(event.event_time), event.event_id, event)


@dataclass(frozen=True)
class Source:
    """A topic the handler reads, and the contract its records are decoded with."""

    topic: str
    contract: type[BaseModel]


def _event_from_log(view: AggregationView, row: Any) -> WindowEvent:
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


class FeaturesHandler:
    """See the module docstring."""

    def __init__(
        self,
        store: FeatureStore,
        label_store: LabelStore,
        aggregator: WindowAggregator,
        dead_letters: DeadLetterPublisher,
        metrics: FeaturesMetrics,
        *,
        push_source: str,
        scored: Source,
        labels: Source,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        eviction_interval_s: float = 60.0,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self._scored = scored
        self._label_source = labels
        self._key = aggregator.view.key
        self._store = store
        self._labels = label_store
        self._aggregator = aggregator
        self._push_source = push_source
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._clock = clock
        self._online_at: dict[str, int] = {}
        """Per entity, the event time of the newest row pushed online."""
        self._online_stamp: dict[str, int] = {}
        """Per entity, the event timestamp that row was pushed with (see :meth:`_push`)."""
        self._entity_partition: dict[str, int] = {}
        self._pending_reload: set[str] = set()
        self._eviction_interval_s = eviction_interval_s
        self._on_stored = on_stored
        self._next_eviction = time.monotonic() + eviction_interval_s

    def __call__(self, records: Sequence[RawRecord]) -> None:
        if self._pending_reload:
            self._reload_entities(self._pending_reload)
        good, rejected = split_batch(records, self.decode)
        scored = [item for item in good if item.record.topic == self._scored.topic]
        labels = [item for item in good if item.record.topic == self._label_source.topic]
        entities = {str(getattr(item.value, self._key)) for item in scored}
        view = self._aggregator.view
        events = [event_from_scored(view, item.value) for item in scored]
        try:
            self._read_back_history(events)
            rows, accepted, late = self._aggregate(scored, events)
            self._push(rows)
            self._store_events(accepted, labels)
        except Exception:
            # The batch will be retried: its entities go back to what the label store knows
            # before anything else is aggregated (the next call does it first).
            self._aggregator.forget(entities)
            self._pending_reload |= entities
            raise
        self._dead_letters.publish([*rejected, *late])
        self._evict_idle()
        self._metrics.users_in_state.set(self._aggregator.entities)

    def decode(self, record: RawRecord) -> BaseModel:
        """Decode one record against its topic's contract."""
        for source in (self._scored, self._label_source):
            if record.topic == source.topic:
                return decode_contract(source.contract, record)
        raise RecordRejected("unknown_topic", f"features does not read {record.topic}")

    def _read_back_history(self, events: Sequence[WindowEvent]) -> None:
        # Entities the aggregator forgot (idle, or older than what a restart read back) whose
        # history this batch needs: one read of the label store for all of them.
        request = self._aggregator.history_needed(events)
        if request is None:
            return
        frame = self._labels.read(
            self._labels.scored,
            start=from_us(request.start_us),
            end=from_us(request.end_us),
            filter_expression=ds.field(self._key).isin(sorted(request.keys)),
        )
        stored = [_event_from_log(self._aggregator.view, row) for row in frame.itertuples(index=False)]
        self._metrics.history_reads.inc()
        self._metrics.restored_events.inc(self._aggregator.load_history(request, stored))
        self._note_restored(frame)

    def _aggregate(
        self, scored: Sequence[Decoded[BaseModel]], events: Sequence[WindowEvent]
    ) -> tuple[dict[tuple[str, int], WindowRow], list[Decoded[BaseModel]], list[Rejected]]:
        accepted: list[Decoded[BaseModel]] = []
        late: list[Rejected] = []
        lateness_s = self._aggregator.allowed_lateness_us / SECOND
        for item, event in zip(scored, events, strict=True):
            result = self._aggregator.accept(event)
            self._metrics.events.labels("scored", result.outcome.value).inc()
            self._metrics.lateness_seconds.observe(result.lateness_us / SECOND)
            if result.outcome is Outcome.LATE:
                message = (
                    f"event time {from_us(event.event_us).isoformat()} is {result.lateness_us / SECOND:.0f}s behind "
                    f"{self._key} {event.key}'s latest event; allowed lateness is {lateness_s:.0f}s"
                )
                late.append(Rejected(item.record, RecordRejected("late_event", message)))
                continue
            if result.outcome is Outcome.ACCEPTED:
                accepted.append(item)
                self._entity_partition[event.key] = item.record.partition
        # Every row the batch changed, computed once (a late event changes the rows after it).
        rows = {(row.key, row.at_us): row for row in self._aggregator.flush()}
        return rows, accepted, late

    def _push(self, rows: dict[tuple[str, int], WindowRow]) -> None:
        if not rows:
            return
        created = self._clock()
        offline = rows_frame(rows.values(), self._aggregator.view.key, created)
        started = time.perf_counter()
        self._store.push(self._push_source, offline, to=PushMode.OFFLINE)
        self._metrics.push_seconds.labels("offline").observe(time.perf_counter() - started)
        self._metrics.rows_pushed.labels("offline").inc(len(offline))
        newest: dict[str, WindowRow] = {}
        for row in rows.values():
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
        self._store.push(
            self._push_source,
            rows_frame(rows_out, self._aggregator.view.key, created, stamps),
            to=PushMode.ONLINE,
        )
        self._metrics.push_seconds.labels("online").observe(time.perf_counter() - started)
        self._metrics.rows_pushed.labels("online").inc(len(rows_out))
        for row, stamp in zip(rows_out, stamps, strict=True):
            self._online_at[row.key] = row.at_us
            self._online_stamp[row.key] = stamp

    def _store_events(self, scored: Sequence[Decoded[BaseModel]], labels: Sequence[Decoded[BaseModel]]) -> None:
        if scored:
            self._labels.append(
                self._labels.scored,
                [
                    {
                        **item.value.model_dump(mode="json"),
                        "event_time": item.value.event_time,  # type: ignore[attr-defined]
                        "source_partition": item.record.partition,
                        "source_offset": item.record.offset,
                    }
                    for item in scored
                ],
            )
            self._metrics.events.labels("scored", "stored").inc(len(scored))
        if labels:
            self._labels.append(
                self._labels.labels,
                [
                    {
                        **item.value.model_dump(mode="json"),
                        "event_time": item.value.event_time,  # type: ignore[attr-defined]
                    }
                    for item in labels
                ],
            )
            self._metrics.events.labels("label", "stored").inc(len(labels))
        if scored or labels:
            self._metrics.label_store_written.set(time.time())
            self._on_stored()

    # State: rebuilt from the label store's log of scored events.

    def _horizon_start(self) -> datetime | None:
        # The aggregator evicts entities the longest window and twice the lateness behind; a restart
        # reads back as much, so an event within the lateness of the newest needs no further read.
        latest = self._labels.latest_event_time(self._labels.scored)
        if latest is None:
            return None
        return latest - timedelta(
            microseconds=self._aggregator.longest_window_us + 2 * self._aggregator.allowed_lateness_us
        )

    def _restore(self, condition: ds.Expression) -> None:
        start = self._horizon_start()
        if start is None:
            return
        frame = self._labels.read(self._labels.scored, start=start, filter_expression=condition)
        events = [_event_from_log(self._aggregator.view, row) for row in frame.itertuples(index=False)]
        self._metrics.restored_events.inc(self._aggregator.restore(events, complete_from_us=to_us(start)))
        self._note_restored(frame)
        self._metrics.users_in_state.set(self._aggregator.entities)
        log.info("state restored from the label store", extra={"events": len(frame)})

    def _note_restored(self, frame: pd.DataFrame) -> None:
        """What the handler keeps per entity, for entities whose events were read back."""
        for entity, partition in zip(frame[self._key], frame["source_partition"], strict=True):
            self._entity_partition[str(entity)] = int(partition)
        for entity in {str(entity) for entity in frame[self._key]}:
            watermark = self._aggregator.watermark(entity)
            if watermark is not None:
                self._online_at[entity] = max(self._online_at.get(entity, watermark), watermark)
                self._online_stamp[entity] = max(self._online_stamp.get(entity, watermark), watermark)

    def _evict_idle(self) -> None:
        # After the label store append: what an evicted entity held is stored, and is read back
        # if it comes back needing it.
        now = time.monotonic()
        if now < self._next_eviction:
            return
        self._next_eviction = now + self._eviction_interval_s
        evicted = self._aggregator.evict_idle()
        for entity in evicted:
            self._entity_partition.pop(entity, None)
            self._online_at.pop(entity, None)
            self._online_stamp.pop(entity, None)
        self._metrics.users_evicted.inc(len(evicted))

    def on_assigned(self, partitions: list[tuple[str, int]]) -> None:
        """Load the aggregates of the entities on newly assigned partitions of the scored topic."""
        mine = [partition for topic, partition in partitions if topic == self._scored.topic]
        if mine:
            self._restore(ds.field("source_partition").isin(mine))

    def on_revoked(self, partitions: list[tuple[str, int]]) -> None:
        """Drop the entities of revoked partitions: their new owner carries on, and so may we later."""
        gone = {partition for topic, partition in partitions if topic == self._scored.topic}
        entities = [entity for entity, partition in self._entity_partition.items() if partition in gone]
        self._aggregator.forget(entities)
        for entity in entities:
            self._entity_partition.pop(entity, None)
            self._online_at.pop(entity, None)
            self._online_stamp.pop(entity, None)

    def _reload_entities(self, entities: set[str]) -> None:
        # Raises when the label store is unreachable: the batch is retried, and so is this.
        self._restore(ds.field(self._key).isin(sorted(entities)))
        self._pending_reload.clear()
