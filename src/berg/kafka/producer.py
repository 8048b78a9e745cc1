"""The producer every Berg stage uses: acks=all, idempotent, bytes in and bytes out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from pydantic import BaseModel

from berg.kafka.security import client_security
from berg.kafka.topics import MAX_MESSAGE_BYTES
from berg.settings import KafkaSettings

__all__ = ["CoPartitioner", "Outgoing", "encode_event", "open_producer", "send_and_wait"]


def open_producer(settings: KafkaSettings, *, linger_ms: int = 5, bootstrap_timeout_ms: int = 30_000) -> Any:
    """A ``KafkaProducer`` that waits for every in-sync replica (``acks="all"``).

    Idempotence keeps retries from writing a record twice. Keys and values are
    bytes; encode with :func:`encode_event`. Requests may carry records up to
    the raw topics' limit (:data:`~berg.kafka.topics.MAX_MESSAGE_BYTES`).
    ``bootstrap_timeout_ms`` bounds the wait for a first broker (kafka-python's default, 30 s);
    a caller that retries on its own passes less, to look at a stop request between attempts.
    """
    return KafkaProducer(
        bootstrap_timeout_ms=bootstrap_timeout_ms,
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        # Large batches: stages send a whole micro-batch, then flush and wait for the acks.
        batch_size=256 * 1024,
        max_request_size=MAX_MESSAGE_BYTES + 64 * 1024,
        request_timeout_ms=settings.request_timeout_ms,
        **client_security(settings),
    )


def encode_event(event: BaseModel) -> bytes:
    """A contract event as the UTF-8 JSON bytes that go on the wire."""
    return event.model_dump_json().encode("utf-8")


class CoPartitioner:
    """Picks the output partition of a record from its input partition.

    A stage that reads a keyed topic and writes a keyed topic keeps each key's
    records together and in order by writing partition ``p`` of the input to
    partition ``p mod n`` of the output: a key's records all come from one
    input partition. It also saves hashing every key again in Python.
    """

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._counts: dict[str, int] = {}

    def partition(self, topic: str, input_partition: int) -> int:
        """The partition of ``topic`` for a record read from ``input_partition``.

        Raises:
            RuntimeError: ``topic`` does not exist.
        """
        if topic not in self._counts:
            partitions = self._producer.partitions_for(topic)
            if not partitions:
                raise RuntimeError(f"topic {topic} has no partitions; was it created (berg up creates it)?")
            self._counts[topic] = len(partitions)
        return input_partition % self._counts[topic]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to send: where, what, and with which headers."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int | None = None
    """``None`` lets the producer's partitioner choose by key."""
    timestamp_ms: int | None = None
    """``None`` stamps the send time."""


def send_and_wait(producer: Any, records: Iterable[Outgoing], timeout_s: float) -> None:
    """Send every record, flush at once (no waiting out linger.ms), and wait for each ack.

    ``records`` may be a generator: each is sent as it comes, so a stage that builds its
    records on the way never holds a whole micro-batch of them (fewer objects for the
    garbage collector to promote and scan).

    Raises:
        kafka.errors.KafkaError: a send failed; the caller must not commit what it consumed.
    """
    futures = [
        producer.send(
            record.topic,
            key=record.key,
            value=record.value,
            headers=record.headers,
            partition=record.partition,
            timestamp_ms=record.timestamp_ms,
        )
        for record in records
    ]
    if futures:
        producer.flush(timeout=timeout_s)
    for future in futures:
        future.get(timeout=timeout_s)
