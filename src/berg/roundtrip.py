"""A round trip through the local stack: events out to Kafka, back through the consumer loop.

This is what ``berg demo`` shows until the lifecycle services exist: valid
transactions arrive in the sink, malformed ones land in the dead-letter topic
with their reason, offsets are committed only after the sink has the data, and
Prometheus scrapes the consumer's metrics.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter

from berg.contracts.events import TransactionV1
from berg.kafka.consumer import ConsumerLoop, ConsumerMetrics, open_consumer
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.decoding import decode_contract, split_batch
from berg.kafka.producer import encode_event, open_producer
from berg.kafka.records import RawRecord
from berg.kafka.topics import TRANSACTIONS_RAW
from berg.settings import KafkaSettings

__all__ = ["RoundTripResult", "make_transactions", "produce", "run_round_trip"]

MALFORMED_PAYLOADS = (b"{not json", b'{"schema_version": 1, "amount": "NaN"}', b"")


def make_transactions(count: int, rng: random.Random) -> list[TransactionV1]:
    """``count`` plausible card transactions (a stand-in until ``berg simulate`` exists)."""
    start = datetime.now(UTC) - timedelta(minutes=count)
    return [
        TransactionV1(
            event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            event_time=start + timedelta(minutes=index),
            user_id=f"user-{rng.randrange(50):03d}",
            merchant_id=f"merchant-{rng.randrange(20):03d}",
            amount=round(rng.lognormvariate(3.0, 1.0), 2),
            merchant_category=rng.choice(("5411", "5812", "5999", "4829")),
            channel=rng.choice(("card_present", "card_not_present")),
            country=rng.choice(("DE", "FR", "NL", "US")),
        )
        for index in range(count)
    ]


def produce(
    settings: KafkaSettings, transactions: Sequence[TransactionV1], malformed: Sequence[bytes], malformed_key: bytes
) -> None:
    """Send transactions (keyed by user) and malformed payloads (keyed ``malformed_key``); wait for acks."""
    producer = open_producer(settings)
    try:
        futures = [producer.send(TRANSACTIONS_RAW, key=t.user_id.encode(), value=encode_event(t)) for t in transactions]
        futures += [producer.send(TRANSACTIONS_RAW, key=malformed_key, value=payload) for payload in malformed]
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close()


@dataclass
class RoundTripResult:
    """What came back of this run's records: transactions received, and dead-letter reasons."""

    received: dict[uuid.UUID, TransactionV1] = field(default_factory=dict)
    dead_lettered: list[str] = field(default_factory=list)


def run_round_trip(
    settings: KafkaSettings,
    *,
    expected: set[uuid.UUID],
    malformed_key: bytes,
    expected_dead: int,
    registry: CollectorRegistry,
    group_id: str = "berg-demo-roundtrip",
    timeout_s: float = 60.0,
    on_progress: Callable[[RoundTripResult], None] = lambda _: None,
) -> RoundTripResult:
    """Consume ``transactions.raw`` until this run's records are through.

    The group keeps its committed offsets between runs, so a second run reads
    only what was produced since; records of earlier runs that are read anyway
    are handled the same way but not counted.

    Raises:
        TimeoutError: they did not all arrive within ``timeout_s``.
    """
    result = RoundTripResult()
    received = Counter("berg_roundtrip_received", "Transactions that reached the sink.", registry=registry)
    producer = open_producer(settings)
    dead_letters = DeadLetterPublisher(producer, "roundtrip")

    def handle(records: Sequence[RawRecord]) -> None:
        good, bad = split_batch(records, lambda record: decode_contract(TransactionV1, record))
        dead_letters.publish(bad)
        for item in good:
            if item.value.event_id in expected:
                result.received[item.value.event_id] = item.value
        result.dead_lettered += [item.error.reason for item in bad if item.record.key == malformed_key]
        received.inc(len(good))

    loop = ConsumerLoop(
        open_consumer(settings, [TRANSACTIONS_RAW], group_id),
        handle,
        metrics=ConsumerMetrics.register(registry),
        poll_timeout_ms=200,
    )
    deadline = time.monotonic() + timeout_s
    try:
        while len(result.received) < len(expected) or len(result.dead_lettered) < expected_dead:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"received {len(result.received)}/{len(expected)} events and "
                    f"{len(result.dead_lettered)}/{expected_dead} dead letters in {timeout_s:.0f}s"
                )
            loop.poll_once()
            on_progress(result)
    finally:
        loop.close()
        producer.close()
    return result
