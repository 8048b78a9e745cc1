"""Produce a simulated stream to Kafka: keyed, with headers, paced, every record acknowledged.

Records go out with :func:`berg.kafka.producer.open_producer` (``acks=all``,
idempotent). Kafka's record timestamp is left to the producer (wall time);
the event time travels in the value, so old simulated event times never
trigger the broker's time-based retention.

The raw topics accept records up to :data:`berg.kafka.topics.MAX_MESSAGE_BYTES`
(5 MiB), so ``oversized`` records (just over ingestion's 1 MiB limit) reach
ingestion. A record that Kafka refuses for its size anyway (a broker or topic
with a lower limit) is counted in :attr:`ProductionCounts.refused_too_large`,
and the run goes on.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from kafka.errors import MessageSizeTooLargeError

from berg.kafka.producer import open_producer
from berg.settings import KafkaSettings
from berg.simulator.traffic import SimulatedEvent
from berg_app.simulator.pacing import Pacer

__all__ = ["ProductionCounts", "RecordSender", "produce_events", "send_events"]


class RecordSender(Protocol):
    """What :func:`send_events` needs of a producer (a kafka-python ``KafkaProducer`` has it)."""

    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ..., headers: Any = ...) -> Any:
        """Queue a record; return a future whose ``get(timeout)`` waits for the broker's ack."""

    def flush(self, timeout: float | None = ...) -> None:
        """Send every queued record now and wait for the outcome."""


@dataclass
class ProductionCounts:
    """What one run put on Kafka: acknowledged records by kind, topic and malformed class."""

    sent_by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    """Records handed to the producer so far, by kind."""
    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    by_topic: collections.Counter[str] = field(default_factory=collections.Counter)
    by_malformed_class: collections.Counter[str] = field(default_factory=collections.Counter)
    positives: int = 0
    """Acknowledged valid scored events of the positive class (from the truth)."""
    refused_too_large: collections.Counter[str] = field(default_factory=collections.Counter)
    """Malformed class (or kind) of records Kafka refused for their size; they are not on the topic."""
    first_event_time: datetime | None = None
    last_event_time: datetime | None = None

    @property
    def sent(self) -> int:
        """Records handed to the producer so far."""
        return sum(self.sent_by_kind.values())

    @property
    def acknowledged(self) -> int:
        """Records the broker has acknowledged."""
        return sum(self.by_kind.values())

    @property
    def scored_records(self) -> int:
        """Acknowledged records on the scored stream's topic, valid and malformed."""
        return self.by_kind["scored"] + self.by_kind["malformed"]

    def count_acknowledged(self, event: SimulatedEvent) -> None:
        """Count a record the broker acknowledged."""
        self.by_kind[event.kind] += 1
        self.by_topic[event.topic] += 1
        if event.truth.malformed_class is not None:
            self.by_malformed_class[event.truth.malformed_class] += 1
        if event.kind == "scored" and event.truth.positive:
            self.positives += 1

    def count_refused_too_large(self, event: SimulatedEvent) -> None:
        """Count a record Kafka refused for its size."""
        self.refused_too_large[event.truth.malformed_class or event.kind] += 1


@dataclass(frozen=True, slots=True)
class _InFlight:
    future: Any
    event: SimulatedEvent


def send_events(
    producer: RecordSender,
    events: Iterable[SimulatedEvent],
    *,
    pacer: Pacer | None = None,
    on_progress: Callable[[ProductionCounts], None] | None = None,
    progress_every: int = 100,
    max_in_flight: int = 10_000,
    ack_timeout_s: float = 60.0,
) -> ProductionCounts:
    """Send every event, keyed and with its headers, and wait for each ack.

    Args:
        producer: a kafka-python producer (or anything with its ``send`` and ``flush``).
        events: the stream to send; bound it first (:func:`~berg_app.simulator.bounds.bounded`).
        pacer: spaces the sends in wall time; ``None`` sends as fast as possible.
        on_progress: called with the counts every ``progress_every`` sends and once at the end.
        progress_every: how often to report progress.
        max_in_flight: waits for the oldest ack once this many records are unacknowledged.
        ack_timeout_s: how long to wait for one ack.

    Returns:
        The acknowledged records, by kind, topic and malformed class.

    Raises:
        kafka.errors.KafkaError: a record failed for another reason than its size.
    """
    counts = ProductionCounts()
    in_flight: collections.deque[_InFlight] = collections.deque()

    def settle(item: _InFlight) -> None:
        try:
            item.future.get(timeout=ack_timeout_s)
        except MessageSizeTooLargeError:
            counts.count_refused_too_large(item.event)
        else:
            counts.count_acknowledged(item.event)

    for event in events:
        if pacer is not None:
            pacer.wait_turn()
        counts.sent_by_kind[event.kind] += 1
        counts.first_event_time = counts.first_event_time or event.event_time
        counts.last_event_time = event.event_time
        try:
            future = producer.send(event.topic, value=event.value, key=event.key, headers=list(event.headers))
        except MessageSizeTooLargeError:
            counts.count_refused_too_large(event)
        else:
            in_flight.append(_InFlight(future, event))
        while len(in_flight) > max_in_flight:
            settle(in_flight.popleft())
        if on_progress is not None and counts.sent % progress_every == 0:
            on_progress(counts)
    producer.flush(timeout=ack_timeout_s)
    while in_flight:
        settle(in_flight.popleft())
    if on_progress is not None:
        on_progress(counts)
    return counts


def produce_events(
    settings: KafkaSettings,
    events: Iterable[SimulatedEvent],
    *,
    rate_per_s: float = 0.0,
    on_progress: Callable[[ProductionCounts], None] | None = None,
    progress_every: int = 100,
) -> ProductionCounts:
    """Produce ``events`` to Kafka at ``rate_per_s`` records per second (0: as fast as possible).

    Opens a producer with :func:`~berg.kafka.producer.open_producer`, sends
    every event (see :func:`send_events`), waits for every ack and closes it.
    """
    producer = open_producer(settings)
    try:
        return send_events(
            producer,
            events,
            pacer=Pacer(rate_per_s) if rate_per_s > 0 else None,
            on_progress=on_progress,
            progress_every=progress_every,
        )
    finally:
        producer.close()
