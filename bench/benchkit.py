"""What the Kafka benchmarks share: a stack on free ports, simulated transactions on a topic, the bare baseline.

Imported by the scripts beside it (``python bench/<name>.py`` puts ``bench/`` on the path).
"""

from __future__ import annotations

import gc
import itertools
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from berg.kafka.consumer import BatchHandler, ConsumerLoop, open_consumer
from berg.kafka.producer import open_producer
from berg.kafka.records import RawRecord
from berg.service import ConsumerServiceSettings
from berg_app.stack.local import LocalStack
from berg_app.stack.settings import PortTable
from berg_fraud.simulator.generator import SimulationConfig, simulate

__all__ = [
    "Measured",
    "bare_poll_loop",
    "commit_polled",
    "free_ports",
    "gather_polls",
    "measured",
    "measured_service_path",
    "produce_transactions",
    "timed_service_path",
]


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


@dataclass(frozen=True)
class Measured:
    """One path over ``events`` records: wall seconds and this process's CPU seconds (all its threads)."""

    events: int
    wall_s: float
    cpu_s: float
    gc_s: float = 0.0
    """CPU seconds of this process inside garbage collections (part of ``cpu_s``)."""
    full_collections: int = 0
    """Collections of the oldest generation: each scans the whole heap."""

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s / self.events * 1e6

    def __add__(self, other: Measured) -> Measured:
        return Measured(
            self.events + other.events,
            self.wall_s + other.wall_s,
            self.cpu_s + other.cpu_s,
            self.gc_s + other.gc_s,
            self.full_collections + other.full_collections,
        )

    @property
    def gc_us_per_event(self) -> float:
        return self.gc_s / self.events * 1e6


class _Clock:
    """Wall time from the first poll that returned records, CPU time over the whole section.

    The CPU section includes the group join and the idle polls before the first records; they
    cost next to nothing and both paths pay them.
    """

    def __init__(self) -> None:
        self.cpu_started = time.process_time()
        self.wall_started: float | None = None
        # The collector's share: it depends on how many objects a path keeps alive, and one
        # full collection of a large heap (GX, pandas) costs a good part of a second.
        self.gc_s = 0.0
        self.full_collections = 0
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.process_time()
            return
        self.gc_s += time.process_time() - self._gc_started
        self.full_collections += info["generation"] == 2  # the oldest of CPython's three

    def watch(self, consumer: Any) -> Any:
        """``consumer``, whose first ``poll`` that returns records starts the wall clock."""
        return _Watched(consumer, self)

    def polled(self) -> None:
        if self.wall_started is None:
            self.wall_started = time.perf_counter()

    def result(self, events: int) -> Measured:
        wall = time.perf_counter() - (self.wall_started or time.perf_counter())
        gc.callbacks.remove(self._on_gc)
        return Measured(events, wall, time.process_time() - self.cpu_started, self.gc_s, self.full_collections)


class _Watched:
    def __init__(self, consumer: Any, clock: _Clock) -> None:
        self._consumer = consumer
        self._clock = clock

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        polled = self._consumer.poll(*args, **kwargs)
        if polled:
            self._clock.polled()
        return polled

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


@contextmanager
def measured() -> Iterator[_Clock]:
    """``with measured() as clock``: poll through ``clock.watch(consumer)``, then ``clock.result(n)``.

    CPU is ``time.process_time()``: every thread of this process (kafka-python's sender and
    heartbeat threads included), not the broker, which runs in its own JVM.
    """
    yield _Clock()


def measured_service_path(
    stack: LocalStack,
    topic: str,
    group: str,
    handler: BatchHandler,
    settings: ConsumerServiceSettings,
    events: int,
    profile: Callable[[Callable[[], None]], None] | None = None,
) -> Measured:
    """Berg's ``ConsumerLoop`` with ``handler`` and the service's batching until ``events`` are handled.

    ``profile``, when given, runs the loop (a ``cProfile.Profile().runcall``).
    """
    handled = 0
    with measured() as clock:

        def counting(records: Sequence[RawRecord]) -> None:
            nonlocal handled
            handler(records)
            handled += len(records)

        loop = ConsumerLoop(
            clock.watch(
                open_consumer(stack.kafka_settings, [topic], group, max_poll_records=settings.batch_max_records)
            ),
            counting,
            poll_timeout_ms=settings.poll_timeout_ms,
            batch_max_records=settings.batch_max_records,
            batch_max_wait_ms=settings.batch_max_wait_ms,
        )

        def run() -> None:
            while handled < events:
                loop.poll_once()

        (profile or (lambda call: call()))(run)
        result = clock.result(handled)
    loop.close()
    return result


def gather_polls(consumer: Any, settings: ConsumerServiceSettings) -> list[Any]:
    """Up to ``batch_max_records`` records from kafka-python polls, within ``batch_max_wait_ms`` of the first.

    The same micro-batching as Berg's ``ConsumerLoop``, on kafka-python's own ``ConsumerRecord`` objects.
    """
    wanted = settings.batch_max_records
    records = [r for batch in consumer.poll(settings.poll_timeout_ms, wanted).values() for r in batch]
    if not records:
        return records
    deadline = time.monotonic() + settings.batch_max_wait_ms / 1000
    while len(records) < wanted:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            break
        polled = consumer.poll(min(remaining_ms, settings.poll_timeout_ms), wanted - len(records))
        records += [r for batch in polled.values() for r in batch]
    return records


def commit_polled(consumer: Any, records: Sequence[Any]) -> None:
    """Commit the offset after the last of ``records`` on each of their partitions."""
    last: dict[Any, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        last[tp] = max(record.offset, last.get(tp, -1))
    consumer.commit({tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in last.items()})
