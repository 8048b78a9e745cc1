"""The consumer loop: raw bytes to the caller, offsets committed only after the caller's sink confirms.

Delivery is at-least-once. The loop polls a batch, hands it to a
:class:`BatchHandler` and commits the batch's offsets only when the handler has
returned, i.e. when every record is durable in a sink or in the dead-letter
topic. If the handler raises (a sink is down), the loop seeks back to the start
of the batch and retries after a backoff. If the commit fails because the group
rebalanced (``CommitFailedError``), the records are redelivered to the
partition's new owner; sinks are idempotent on ``event_id``, so that is safe.
Values are never deserialized by kafka-python, so no record can wedge ``poll()``;
a record batch the client itself cannot decode (a codec, a checksum) is
dead-lettered and skipped (:mod:`berg.kafka.undecodable`), its offsets committed
like a handled batch's, while the other partitions flow on.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from berg.kafka.records import RawRecord
from berg.kafka.security import client_security
from berg.kafka.topics import MAX_MESSAGE_BYTES
from berg.kafka.undecodable import UndecodableBatch, UndecodableBatchError, UndecodableBatches, poll_records
from berg.settings import KafkaSettings

__all__ = ["BatchHandler", "BatchOutcome", "ConsumerLoop", "ConsumerMetrics", "RebalanceHooks", "open_consumer"]

log = logging.getLogger(__name__)


class BatchHandler(Protocol):
    """Takes a batch of raw records and returns only once each is durable somewhere.

    Raise to refuse the whole batch (a sink is unavailable): nothing is
    committed and the batch comes again after a backoff. Records that can never
    succeed (poison) must be dead-lettered by the handler, not raised.
    """

    def __call__(self, records: Sequence[RawRecord], /) -> None: ...


class BatchOutcome(enum.Enum):
    """What one turn of the loop did."""

    EMPTY = "empty"
    COMMITTED = "committed"
    COMMIT_FAILED = "commit_failed"
    HANDLER_FAILED = "handler_failed"
    UNDECODABLE_SKIPPED = "undecodable_skipped"
    """A batch the client cannot decode was dead-lettered, skipped and its offsets committed."""
    DEAD_LETTER_FAILED = "dead_letter_failed"
    """An undecodable batch could not be dead-lettered; it is tried again after a backoff."""


@dataclass(frozen=True, slots=True)
class ConsumerMetrics:
    """The loop's Prometheus metrics, registered on the service's own registry."""

    consumed: Counter
    batches: Counter
    batch_seconds: Histogram
    lag: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ConsumerMetrics:
        """Create the metrics on ``registry``."""
        return cls(
            consumed=Counter("berg_consumer_records", "Records polled from Kafka.", ["topic"], registry=registry),
            batches=Counter("berg_consumer_batches", "Batches by outcome.", ["outcome"], registry=registry),
            batch_seconds=Histogram(
                "berg_consumer_batch_duration_seconds",
                "Time from poll to commit for one batch.",
                registry=registry,
            ),
            lag=Gauge(
                "berg_consumer_lag_records",
                "Records between this consumer's position and the partition's end.",
                ["topic", "partition"],
                registry=registry,
            ),
        )


PartitionsCallback = Callable[[list[tuple[str, int]]], None]


class RebalanceHooks(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs rebalances and tells registered callbacks which partitions came and went.

    Batches are handled and committed between polls, and rebalances happen inside
    ``poll()``, so no batch is in flight when a callback runs: a stateful handler
    can drop the state of revoked partitions and load the state of assigned ones.
    """

    def __init__(self) -> None:
        self._on_assigned: list[PartitionsCallback] = []
        self._on_revoked: list[PartitionsCallback] = []

    def on_assigned(self, callback: PartitionsCallback) -> None:
        """Call ``callback([(topic, partition), ...])`` after partitions are assigned."""
        self._on_assigned.append(callback)

    def on_revoked(self, callback: PartitionsCallback) -> None:
        """Call ``callback([(topic, partition), ...])`` before partitions are taken away."""
        self._on_revoked.append(callback)

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("partitions revoked", extra={"partitions": sorted(str(tp) for tp in revoked)})
        for callback in self._on_revoked:
            callback(sorted((tp.topic, tp.partition) for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})
        for callback in self._on_assigned:
            callback(sorted((tp.topic, tp.partition) for tp in assigned))


def open_consumer(
    settings: KafkaSettings,
    topics: Sequence[str],
    group_id: str,
    *,
    max_poll_records: int = 500,
    session_timeout_ms: int = 10_000,
    rebalance_hooks: RebalanceHooks | None = None,
) -> Any:
    """A ``KafkaConsumer`` subscribed to ``topics``: manual commits, no deserializers.

    A new group starts from the earliest offset, so nothing produced before the
    first start is skipped.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(session_timeout_ms // 4, 500),
        request_timeout_ms=settings.request_timeout_ms,
        # Raw topics hold records up to MAX_MESSAGE_BYTES; fetch them whole.
        max_partition_fetch_bytes=MAX_MESSAGE_BYTES + 64 * 1024,
        **client_security(settings),
    )
    consumer.subscribe(list(topics), listener=rebalance_hooks or RebalanceHooks())
    # The topics' metadata before the first join, so that join sees their partitions.
    # Without it kafka-python 3.0 joins before its metadata refresh lands, assigns
    # nothing, and rebalances again when it does; as leader of that second join it
    # stops awaiting the join once its own assignment is computed, so a poll timing
    # out between the assignment and the SyncGroup answer leaves the consumer with no
    # partitions and no heartbeat for good (seen under load: a test's consumer never
    # received a record).
    consumer.topics()
    return consumer


class ConsumerLoop:
    """Poll, hand over, commit; repeat until told to stop.

    Args:
        consumer: from :func:`open_consumer` (manual commit, raw bytes).
        handler: the caller's sink; see :class:`BatchHandler`.
        metrics: optional metrics to update.
        poll_timeout_ms: how long the first poll of a turn waits for records.
        batch_max_records: gather polls into one batch of up to this many records
            (a micro-batch); ``None`` hands over each poll as it comes.
        batch_max_wait_ms: with ``batch_max_records``, hand over what was gathered
            once this long has passed since the first record arrived.
        initial_backoff_s: first wait after a handler failure; doubles up to ``max_backoff_s``.
        before_commit: called after the handler returned and before the commit
            (fault injection: the crash tests kill the process here).
        undecodable: dead-letters and counts the batches the client cannot decode;
            by default they are only logged, then skipped.
    """

    def __init__(
        self,
        consumer: Any,
        handler: BatchHandler,
        *,
        metrics: ConsumerMetrics | None = None,
        poll_timeout_ms: int = 500,
        batch_max_records: int | None = None,
        batch_max_wait_ms: int = 1_000,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        before_commit: Callable[[], None] | None = None,
        undecodable: UndecodableBatches | None = None,
    ) -> None:
        self._before_commit = before_commit
        self._undecodable = undecodable or UndecodableBatches()
        self._undecodable_batch: UndecodableBatch | None = None
        self._last_poll: float | None = None
        self._consumer = consumer
        self._handler = handler
        self._metrics = metrics
        self._poll_timeout_ms = poll_timeout_ms
        self._batch_max_records = batch_max_records
        self._batch_max_wait_ms = batch_max_wait_ms
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._backoff_s = initial_backoff_s

    def poll_once(self) -> BatchOutcome:
        """One turn: poll a batch, hand it over, commit it; or move past a batch the client cannot decode."""
        if self._undecodable_batch is None:
            records = self._gather()
            if records:
                return self._handle(records)
        if self._undecodable_batch is not None:
            return self._skip_undecodable(self._undecodable_batch)
        return BatchOutcome.EMPTY

    def _handle(self, records: Sequence[RawRecord]) -> BatchOutcome:
        started = time.perf_counter()
        if self._metrics is not None:
            # Once per topic, not per record: a labelled Prometheus update costs about a microsecond.
            for topic, count in Tally(record.topic for record in records).items():
                self._metrics.consumed.labels(topic).inc(count)
        try:
            self._handler(records)
        except Exception:
            log.exception("handler failed; the batch will be consumed again", extra={"records": len(records)})
            self._rewind(records)
            return self._finish(BatchOutcome.HANDLER_FAILED, started)
        if self._before_commit is not None:
            self._before_commit()
        last = _last_offsets(records)
        outcome = self._commit(last, len(records))
        self._record_lag(last)
        return self._finish(outcome, started)

    def seconds_since_poll(self) -> float | None:
        """How long ago the loop last returned from ``poll`` (``None`` before the first poll)."""
        return None if self._last_poll is None else time.monotonic() - self._last_poll

    def _poll(self, timeout_ms: int, max_records: int | None) -> list[RawRecord]:
        try:
            return poll_records(self._consumer, timeout_ms, max_records)
        except UndecodableBatchError as error:
            # Handled on the next turn, after the records already gathered: the
            # client must not poll that partition again until it is moved past.
            self._undecodable_batch = error.batch
            return []
        finally:
            self._last_poll = time.monotonic()

    def _gather(self) -> list[RawRecord]:
        records = self._poll(self._poll_timeout_ms, self._batch_max_records)
        if not records or self._batch_max_records is None:
            return records
        deadline = time.monotonic() + self._batch_max_wait_ms / 1000
        while len(records) < self._batch_max_records and self._undecodable_batch is None:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            records += self._poll(min(remaining_ms, self._poll_timeout_ms), self._batch_max_records - len(records))
        return records

    def _skip_undecodable(self, batch: UndecodableBatch) -> BatchOutcome:
        started = time.perf_counter()
        try:
            moved = self._undecodable.move_past(self._consumer, batch)
        except Exception:
            log.exception("could not dead-letter an undecodable batch; trying again", extra={"batch": batch.describe()})
            return self._finish(BatchOutcome.DEAD_LETTER_FAILED, started)
        self._undecodable_batch = None
        if not moved:
            return BatchOutcome.EMPTY  # the partition went to another member, which meets the batch itself
        skipped = {TopicPartition(batch.topic, batch.partition): OffsetAndMetadata(batch.next_offset, "", -1)}
        outcome = self._commit_offsets(skipped, batch.offsets)
        return self._finish(BatchOutcome.UNDECODABLE_SKIPPED if outcome is BatchOutcome.COMMITTED else outcome, started)

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set, backing off after handler failures."""
        while not stop.is_set():
            outcome = self.poll_once()
            if outcome in (BatchOutcome.HANDLER_FAILED, BatchOutcome.DEAD_LETTER_FAILED):
                stop.wait(self._backoff_s)
                self._backoff_s = min(self._backoff_s * 2, self._max_backoff_s)
            elif outcome is not BatchOutcome.EMPTY:
                self._backoff_s = self._initial_backoff_s

    def close(self) -> None:
        """Leave the group promptly (no autocommit: uncommitted work is redelivered)."""
        self._consumer.close(autocommit=False)

    def _commit(self, last: dict[tuple[str, int], int], records: int) -> BatchOutcome:
        next_offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset + 1, "", -1)
            for (topic, partition), offset in last.items()
        }
        return self._commit_offsets(next_offsets, records)

    def _commit_offsets(self, next_offsets: dict[Any, Any], records: int) -> BatchOutcome:
        try:
            self._consumer.commit(next_offsets)
        except CommitFailedError:
            # The group rebalanced while we handled the batch: the partitions'
            # new owners read from the last commit, so the records come again.
            log.warning("commit failed after a rebalance; records will be redelivered", extra={"records": records})
            return BatchOutcome.COMMIT_FAILED
        except KafkaError as error:
            # A later commit covers these offsets; until then a restart redelivers them.
            log.warning("commit failed: %s", error, extra={"records": records})
            return BatchOutcome.COMMIT_FAILED
        return BatchOutcome.COMMITTED

    def _rewind(self, records: Sequence[RawRecord]) -> None:
        first_offsets: dict[tuple[str, int], int] = {}
        for record in records:
            key = (record.topic, record.partition)
            first_offsets[key] = min(record.offset, first_offsets.get(key, record.offset))
        pending = self._undecodable_batch
        if pending is not None and (pending.topic, pending.partition) in first_offsets:
            # Its partition goes back to before the batch, which will fail again there.
            self._undecodable_batch = None
        for (topic, partition), offset in first_offsets.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition), offset)
            except (IllegalStateError, ValueError):
                # No longer ours after a rebalance (kafka-python raises ValueError for
                # an unassigned partition); its new owner starts from the last commit.
                log.info("not rewinding %s/%s: partition no longer assigned", topic, partition)

    def _record_lag(self, last: dict[tuple[str, int], int]) -> None:
        if self._metrics is None:
            return
        for (topic, partition), offset in last.items():
            try:
                highwater = self._consumer.highwater(TopicPartition(topic, partition))
            except IllegalStateError:
                continue
            if highwater is not None:
                self._metrics.lag.labels(topic, str(partition)).set(max(highwater - offset - 1, 0))

    def _finish(self, outcome: BatchOutcome, started: float) -> BatchOutcome:
        if self._metrics is not None:
            self._metrics.batches.labels(outcome.value).inc()
            self._metrics.batch_seconds.observe(time.perf_counter() - started)
        return outcome


def _last_offsets(records: Sequence[RawRecord]) -> dict[tuple[str, int], int]:
    """The highest offset of ``records`` on each (topic, partition)."""
    # Plain tuples per record, kafka-python's TopicPartition and OffsetAndMetadata once per
    # partition: this runs for every record the loop handles.
    last: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        if record.offset > last.get(key, -1):
            last[key] = record.offset
    return last
