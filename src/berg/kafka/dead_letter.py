"""Publish refused records to the dead-letter topic, original bytes intact."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from berg.contracts.dead_letter import DeadLetterV1
from berg.kafka.decoding import Rejected
from berg.kafka.producer import Outgoing, send_and_wait
from berg.kafka.records import RawRecord
from berg.kafka.topics import DEAD_LETTER

if TYPE_CHECKING:
    from berg.kafka.undecodable import UndecodableBatch

__all__ = ["DeadLetterPublisher"]


class DeadLetterPublisher:
    """Sends refused records to ``berg.dlq`` and waits until the broker has them.

    The original key, value, headers and timestamp are kept; the envelope's
    ``berg.errors.*`` headers say which stage refused the record, why, and
    where it came from (topic, partition, offset).

    Args:
        producer: a producer from :func:`berg.kafka.producer.open_producer`.
        stage: the stage name written into every envelope.
        on_published: called with the reason code of each record the broker
            acknowledged (a metrics hook).
    """

    def __init__(
        self,
        producer: Any,
        stage: str,
        *,
        topic: str = DEAD_LETTER,
        timeout_s: float = 30.0,
        on_published: Callable[[str], None] | None = None,
    ) -> None:
        self._producer = producer
        self._stage = stage
        self._topic = topic
        self._timeout_s = timeout_s
        self._on_published = on_published

    def envelope(self, record: RawRecord, reason: str, error_class: str, message: str) -> DeadLetterV1:
        """The envelope for one refused record."""
        return self._envelope(record.topic, record.partition, record.offset, reason, error_class, message)

    def _envelope(
        self, topic: str, partition: int, offset: int, reason: str, error_class: str, message: str
    ) -> DeadLetterV1:
        return DeadLetterV1(
            stage=self._stage,
            reason=reason,
            error_class=error_class,
            error_message=DeadLetterV1.truncate(message),
            original_topic=topic,
            original_partition=partition,
            original_offset=offset,
            failed_at=datetime.now(UTC),
        )

    def publish(self, rejected: Sequence[Rejected]) -> None:
        """Send every rejected record and block until all are acknowledged (acks=all).

        Raises:
            kafka.errors.KafkaError: a send failed; the caller must not commit
                the batch, so the records are consumed again.
        """
        outgoing = []
        for item in rejected:
            envelope = self.envelope(item.record, item.error.reason, item.error.error_class, item.error.message)
            outgoing.append(
                Outgoing(
                    self._topic,
                    key=item.record.key,
                    value=item.record.value,
                    headers=[*item.record.headers, *envelope.to_headers()],
                    timestamp_ms=item.record.timestamp_ms,
                )
            )
        send_and_wait(self._producer, outgoing, self._timeout_s)
        if self._on_published is not None:
            for item in rejected:
                self._on_published(item.error.reason)

    def publish_undecodable(self, batch: UndecodableBatch, reason: str) -> None:
        """Send one dead letter for a record batch the client could not decode, and wait for the ack.

        There are no bytes to keep (no key and an empty value: the batch stays in
        its topic until retention): the envelope's original coordinates are the
        batch's first skipped offset, and its message names the whole range.

        Raises:
            kafka.errors.KafkaError: the send failed; the caller must not move past the batch.
        """
        message = (
            f"the Kafka client could not decode the record batch holding {batch.describe()} "
            f"({batch.offsets} offsets); {batch.error_class}: {batch.error_message}"
        )
        envelope = self._envelope(batch.topic, batch.partition, batch.first_offset, reason, batch.error_class, message)
        send_and_wait(
            self._producer,
            [Outgoing(self._topic, key=None, value=b"", headers=envelope.to_headers())],
            self._timeout_s,
        )
        if self._on_published is not None:
            self._on_published(reason)
