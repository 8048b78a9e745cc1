"""Sending a simulated stream against an in-memory producer: acknowledged counts, size refusals, progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from berg.simulator.traffic import SimulatedEvent, TrafficPlan
from berg_app.simulator.bounds import bounded
from berg_app.simulator.producer import ProductionCounts, send_events
from berg_fraud.simulator import FraudSimulator, LabelPolicy

START = datetime(2025, 3, 1, tzinfo=UTC)

pytestmark = pytest.mark.unit


@dataclass
class Ack:
    error: Exception | None = None

    def get(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


@dataclass
class MemoryProducer:
    """Keeps what is sent; refuses records over ``max_bytes`` like kafka-python (at send) or the broker (at ack)."""

    max_bytes: int = 1024 * 1024
    broker_refuses: bool = False
    fail_with: Exception | None = None
    sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)
    flushed: int = 0

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: Any = None) -> Ack:
        assert isinstance(headers, list)
        too_large = value is not None and len(value) > self.max_bytes
        if too_large and not self.broker_refuses:
            raise MessageSizeTooLargeError("too large")
        self.sent.append((topic, key, value, headers))
        return Ack(self.fail_with or (MessageSizeTooLargeError("broker says no") if too_large else None))

    def flush(self, timeout: float | None = None) -> None:
        self.flushed += 1


def malformed_run(scored: int = 1_000) -> list[SimulatedEvent]:
    """The reference simulator's records, malformed from the start, 30 %, with oversized records (over 1 MiB) and
    many labels."""
    simulator = FraudSimulator(label_policy=LabelPolicy(manual_review_share=0.2))
    plan = TrafficPlan(start=START, scenario="malformed", onset=START, population=50, malformed_share=0.3)
    return list(bounded(simulator.events(plan), max_scored=scored))


@pytest.mark.parametrize("broker_refuses", [False, True])
def test_counts_are_what_was_acknowledged_and_oversized_records_are_counted_as_refused(broker_refuses: bool) -> None:
    events = malformed_run()
    producer = MemoryProducer(broker_refuses=broker_refuses)
    counts = send_events(producer, events, max_in_flight=50)

    oversized = [e for e in events if e.truth.malformed_class == "oversized"]
    assert oversized
    assert counts.refused_too_large == {"oversized": len(oversized)}
    assert counts.sent == len(events)
    assert counts.acknowledged == len(events) - len(oversized)
    assert counts.by_kind["label"] == sum(e.kind == "label" for e in events)
    assert counts.by_kind["scored"] == sum(e.kind == "scored" for e in events)
    assert counts.by_kind["malformed"] == sum(e.kind == "malformed" for e in events) - len(oversized)
    assert sum(counts.by_malformed_class.values()) == counts.by_kind["malformed"]
    assert "oversized" not in counts.by_malformed_class
    assert counts.positives == sum(e.kind == "scored" and e.truth.positive for e in events)
    assert counts.first_event_time == events[0].event_time
    assert counts.last_event_time == events[-1].event_time
    assert producer.flushed == 1


def test_records_go_out_keyed_with_their_headers_in_order() -> None:
    events = malformed_run(300)
    producer = MemoryProducer(max_bytes=10**9)
    send_events(producer, events)
    assert producer.sent == [(e.topic, e.key, e.value, list(e.headers)) for e in events]
    assert any(e.kind == "malformed" for e in events)
    assert any(e.kind == "label" for e in events)


def test_progress_is_reported_along_the_way_and_at_the_end() -> None:
    events = malformed_run(250)
    seen: list[int] = []

    def remember(counts: ProductionCounts) -> None:
        seen.append(counts.sent)

    send_events(MemoryProducer(max_bytes=10**9), events, on_progress=remember, progress_every=100)
    assert seen[:-1] == list(range(100, len(events) + 1, 100))
    assert seen[-1] == len(events)


def test_any_other_failure_is_raised() -> None:
    with pytest.raises(KafkaTimeoutError):
        send_events(MemoryProducer(fail_with=KafkaTimeoutError("no ack")), malformed_run(10))
