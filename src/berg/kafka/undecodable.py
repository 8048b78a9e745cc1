"""Record batches the Kafka client cannot decode: which partition, which offsets, and moving past them.

kafka-python checks, decompresses and parses every record batch inside
``poll()``. A batch it cannot read (a codec it has no library for or does not
know, a checksum that fails, a payload that does not inflate) raises out of
``poll()`` with no partition attached, and polling again from the same position
never returns (kafka-python 3.0 loops on the failed batch). A consumer that lets
the error through crash-loops and stalls every partition it owns.

:func:`poll_records` turns such a failure into :class:`UndecodableBatchError`,
which names the partition and the offsets of the batch; :class:`UndecodableBatches`
dead-letters it (one envelope for the batch, reason ``undecodable_batch``), counts
it and seeks past exactly that batch, so the other partitions keep flowing and no
good record is skipped.

How the batch is found: the client raises while it reads the batch, so the
exception's traceback still holds the frame that was reading it, with the batch
(a ``kafka.record`` batch, whose header gives the base offset and the last offset
delta without decompressing) and its ``TopicPartition``. The consumer's position
on that partition is where the undelivered part of the batch starts. An error
with no such frame (a network or authorisation error) is not a batch error and
propagates unchanged. kafka-python has no public way to say which partition a
fetch error belongs to; the unit tests raise the error from kafka-python's own
fetcher code and the integration tests from a real broker, so an upgrade that
changes this fails them, not the services.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kafka import TopicPartition
from kafka.errors import IllegalStateError
from kafka.record.abc import ABCRecordBatch
from prometheus_client import CollectorRegistry, Counter

from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.records import RawRecord

__all__ = [
    "UNDECODABLE_BATCH",
    "UndecodableBatch",
    "UndecodableBatchError",
    "UndecodableBatches",
    "find_undecodable_batch",
    "poll_records",
]

log = logging.getLogger(__name__)

UNDECODABLE_BATCH = "undecodable_batch"
"""The dead-letter reason of a batch the client could not decode."""

_MAX_CHAINED_ERRORS = 8


@dataclass(frozen=True, slots=True)
class UndecodableBatch:
    """The offsets of one partition that the client could not decode, and why."""

    topic: str
    partition: int
    first_offset: int
    """The consumer's position when the batch failed: the first offset not delivered."""
    last_offset: int
    """The batch's last offset (from its header)."""
    error_class: str
    error_message: str

    @property
    def next_offset(self) -> int:
        """Where the partition resumes: the first offset after the batch."""
        return self.last_offset + 1

    @property
    def offsets(self) -> int:
        """How many offsets the batch spans from ``first_offset`` (records, or fewer after compaction)."""
        return self.last_offset - self.first_offset + 1

    def describe(self) -> str:
        """``topic/partition offsets first..last``, for logs and dead letters."""
        return f"{self.topic}/{self.partition} offsets {self.first_offset}..{self.last_offset}"


class UndecodableBatchError(Exception):
    """``poll()`` failed on a record batch the client cannot decode; ``batch`` says where."""

    def __init__(self, batch: UndecodableBatch) -> None:
        super().__init__(
            f"the Kafka client cannot decode the record batch at {batch.describe()}: "
            f"{batch.error_class}: {batch.error_message}"
        )
        self.batch = batch


def poll_records(consumer: Any, timeout_ms: int, max_records: int | None) -> list[RawRecord]:
    """``consumer.poll(...)`` as raw records.

    Raises:
        UndecodableBatchError: the client could not decode a record batch; nothing
            was returned, and the consumer must seek past the batch before it
            polls again (:meth:`UndecodableBatches.move_past`).
    """
    try:
        polled = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
    except Exception as error:
        batch = find_undecodable_batch(error, consumer)
        if batch is None:
            raise
        raise UndecodableBatchError(batch) from error
    return [RawRecord.from_consumer_record(record) for records in polled.values() for record in records]


def find_undecodable_batch(error: BaseException, consumer: Any) -> UndecodableBatch | None:
    """The batch ``error`` was raised reading, or ``None`` when it was not raised reading a batch."""
    found = _batch_being_read(error)
    if found is None:
        return None
    partition, batch = found
    try:
        position = consumer.position(partition)
    except (IllegalStateError, ValueError):
        return None  # no longer assigned: its next owner meets the batch itself
    if position is None:
        return None
    # Format v2 batches carry their last offset; an old (v0/v1) wrapper message's offset is its last inner one.
    last_offset = int(batch.last_offset if batch.magic >= 2 else batch.base_offset)
    if last_offset < position:
        # The client reads nothing behind the position; a batch ending there is not what stopped it.
        log.warning("the failed batch ends at %s, before the position %s of %s", last_offset, position, partition)
        return None
    return UndecodableBatch(
        topic=partition.topic,
        partition=partition.partition,
        first_offset=int(position),
        last_offset=last_offset,
        error_class=type(error).__name__,
        error_message=str(error),
    )


def _batch_being_read(error: BaseException) -> tuple[TopicPartition, Any] | None:
    """The innermost frame in ``error``'s tracebacks that held one record batch and its partition."""
    found = None
    for frame_locals in _frames(error):
        partitions = [value for value in frame_locals.values() if isinstance(value, TopicPartition)]
        batches = {id(value): value for value in frame_locals.values() if isinstance(value, ABCRecordBatch)}
        if len(set(partitions)) == 1 and len(batches) == 1:
            found = (partitions[0], next(iter(batches.values())))
    return found


def _frames(error: BaseException) -> Iterator[dict[str, Any]]:
    """The locals of every frame of ``error``'s traceback (outermost first), then of the errors it chains."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAINED_ERRORS:
        seen.add(id(current))
        traceback: TracebackType | None = current.__traceback__
        while traceback is not None:
            yield traceback.tb_frame.f_locals
            traceback = traceback.tb_next
        current = current.__cause__ or current.__context__


class UndecodableBatches:
    """Moves a consumer past the batches its client cannot decode: dead-letter, count, seek.

    Args:
        dead_letters: where the batches are dead-lettered; ``None`` only logs them.
        batches: counts the batches, by topic.
        offsets: counts the offsets they spanned, by topic.
    """

    def __init__(
        self,
        dead_letters: DeadLetterPublisher | None = None,
        *,
        batches: Counter | None = None,
        offsets: Counter | None = None,
    ) -> None:
        self._dead_letters = dead_letters
        self._batches = batches
        self._offsets = offsets

    @classmethod
    def register(cls, registry: CollectorRegistry, dead_letters: DeadLetterPublisher | None) -> UndecodableBatches:
        """One whose counters are on ``registry`` (a service's consumer metrics)."""
        return cls(
            dead_letters,
            batches=Counter(
                "berg_consumer_undecodable_batches",
                "Record batches the Kafka client could not decode, dead-lettered and skipped.",
                ["topic"],
                registry=registry,
            ),
            offsets=Counter(
                "berg_consumer_undecodable_offsets",
                "Offsets spanned by the record batches skipped as undecodable.",
                ["topic"],
                registry=registry,
            ),
        )

    def move_past(self, consumer: Any, batch: UndecodableBatch) -> bool:
        """Dead-letter ``batch`` (acknowledged by the broker), count it, and seek its partition past it.

        Returns:
            False when the partition is no longer assigned: its next owner meets the batch itself.

        Raises:
            kafka.errors.KafkaError: the dead letter was not acknowledged; the position is unchanged.
        """
        partition = TopicPartition(batch.topic, batch.partition)
        if partition not in consumer.assignment():
            log.info("not skipping %s: the partition is no longer assigned", batch.describe())
            return False
        if self._dead_letters is not None:
            self._dead_letters.publish_undecodable(batch, UNDECODABLE_BATCH)
        consumer.seek(partition, batch.next_offset)
        if self._batches is not None:
            self._batches.labels(batch.topic).inc()
        if self._offsets is not None:
            self._offsets.labels(batch.topic).inc(batch.offsets)
        log.error(
            "skipped a record batch the Kafka client cannot decode%s",
            "" if self._dead_letters is None else " (dead-lettered)",
            extra={
                "topic": batch.topic,
                "partition": batch.partition,
                "first_offset": batch.first_offset,
                "last_offset": batch.last_offset,
                "error": f"{batch.error_class}: {batch.error_message}",
            },
        )
        return True
