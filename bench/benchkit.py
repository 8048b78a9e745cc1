"""What the Kafka benchmarks share: a stack on free ports, simulated transactions on a topic, the bare baseline.

Imported by the scripts beside it (``python bench/<name>.py`` puts ``bench/`` on the path).
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from kafka import KafkaConsumer

from berg.kafka.consumer import BatchHandler, ConsumerLoop, open_consumer
from berg.kafka.producer import open_producer
from berg.kafka.records import RawRecord
from berg.service import ConsumerServiceSettings
from berg_app.stack.local import LocalStack
from berg_app.stack.settings import PortTable
from berg_fraud.simulator.generator import SimulationConfig, simulate

__all__ = ["bare_poll_loop", "free_ports", "produce_transactions", "timed_service_path"]


def free_ports() -> PortTable:
    names = list(PortTable.model_fields)
    sockets = [socket.socket() for _ in names]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return PortTable(**dict(zip(names, ports, strict=True)))


def produce_transactions(stack: LocalStack, topic: str, events: int) -> None:
    """``events`` simulated transactions (seed 5, from 2026-01-01) onto ``topic``, keyed by user."""
    producer = open_producer(stack.kafka_settings, linger_ms=20)
    config = SimulationConfig(start=datetime(2026, 1, 1, tzinfo=UTC), seed=5)
    transactions = (event for event in simulate(config) if event.kind == "scored")
    for event in itertools.islice(transactions, events):
        producer.send(topic, key=event.key, value=event.value)
    producer.flush()
    producer.close()


def bare_poll_loop(stack: LocalStack, topic: str, events: int, batch: int) -> float:
    """Events per second of a ``KafkaConsumer`` poll loop that reads and commits, nothing else."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=stack.settings.kafka_bootstrap,
        group_id="bench-bare",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=batch,
    )
    seen = 0
    started = None
    while seen < events:
        polled = consumer.poll(timeout_ms=500)
        if polled and started is None:
            started = time.perf_counter()
        seen += sum(len(records) for records in polled.values())
        consumer.commit()
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return seen / elapsed


def timed_service_path(
    stack: LocalStack, topic: str, group: str, handler: BatchHandler, settings: ConsumerServiceSettings, events: int
) -> tuple[float, float]:
    """Run Berg's ``ConsumerLoop`` with ``handler`` and the service's batching until ``events`` are handled.

    Returns (events per second, seconds), timed from the first handled batch like the bare loop.
    """
    handled = 0

    def counting(records: Sequence[RawRecord]) -> None:
        nonlocal handled
        handler(records)
        handled += len(records)

    loop = ConsumerLoop(
        open_consumer(stack.kafka_settings, [topic], group, max_poll_records=settings.batch_max_records),
        counting,
        poll_timeout_ms=settings.poll_timeout_ms,
        batch_max_records=settings.batch_max_records,
        batch_max_wait_ms=settings.batch_max_wait_ms,
    )
    started = None
    while handled < events:
        loop.poll_once()
        if handled and started is None:
            started = time.perf_counter()
    elapsed = time.perf_counter() - (started or time.perf_counter())
    loop.close()
    return handled / elapsed, elapsed
