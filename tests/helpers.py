"""Helpers shared by tests of the core library and of the services."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from berg_app.stack.local import LocalStack
from berg_app.stack.settings import PortTable, StackSettings
from berg_fraud.contracts import TransactionV1
from berg_fraud.simulator.generator import SimulationConfig, simulate

__all__ = [
    "RecordingProducer",
    "free_port",
    "free_port_table",
    "make_transactions",
    "running_stack",
    "wait_for",
    "wait_for_progress",
]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_table() -> PortTable:
    """Distinct free ports for every component."""
    names = list(PortTable.model_fields)
    ports: set[int] = set()
    while len(ports) < len(names):
        ports.add(free_port())
    return PortTable(**dict(zip(names, sorted(ports), strict=True)))


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    """Poll ``condition`` until it holds.

    Raises:
        AssertionError: it did not hold within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def wait_for_progress(
    condition: Callable[[], bool],
    progress: Callable[[], object],
    what: str,
    *,
    stall_s: float = 120.0,
    interval_s: float = 0.1,
) -> None:
    """Poll ``condition`` until it holds, for as long as ``progress()`` keeps changing.

    The deadline follows progress: it fails only after ``progress()`` (a count,
    a set, an offset) has stayed the same for ``stall_s``, so a busy machine that
    is slow but moving never trips it, and a hang still ends.

    Raises:
        AssertionError: ``progress()`` stood still for ``stall_s`` before ``condition`` held.
    """
    last = progress()
    moved_at = time.monotonic()
    while not condition():
        current = progress()
        if current != last:
            last, moved_at = current, time.monotonic()
        elif time.monotonic() - moved_at > stall_s:
            raise AssertionError(f"no progress for {stall_s}s waiting for {what} (stuck at {last!r})")
        time.sleep(interval_s)


@contextmanager
def running_stack(state_dir: Path) -> Iterator[LocalStack]:
    """Kafka, Prometheus and Alertmanager on free ports (no Berg services: tests start those themselves)."""
    settings = StackSettings(
        state_dir=state_dir, ports=free_port_table(), scrape_interval_s=1, topic_partitions=3, services=[]
    )
    local = LocalStack(settings)
    try:
        local.up()
        yield local
    finally:
        leftovers = local.down()
        assert leftovers == [], f"processes had to be killed at teardown: {leftovers}"


def make_transactions(count: int, seed: int = 1) -> list[TransactionV1]:
    """``count`` valid simulated transactions (the simulator's baseline from a fixed start)."""
    config = SimulationConfig(start=datetime(2026, 1, 1, tzinfo=UTC), seed=seed)
    records = (event for event in simulate(config) if event.kind == "scored")
    return [TransactionV1.model_validate_json(event.value) for event in itertools.islice(records, count)]


class RecordingProducer:
    """Stands in for a KafkaProducer in unit tests of routing logic; integration tests use a real broker.

    Every send is recorded and acknowledged at once; topics have three partitions.
    """

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, topic: str, **kwargs: Any) -> RecordingProducer:
        self.sent.append({"topic": topic, **kwargs})
        return self

    def get(self, timeout: float) -> None:
        return None

    def flush(self, timeout: float) -> None:
        return None

    def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def to(self, topic: str) -> list[dict[str, Any]]:
        """What was sent to ``topic``, in order."""
        return [sent for sent in self.sent if sent["topic"] == topic]
