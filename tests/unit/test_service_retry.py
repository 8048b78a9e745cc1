"""berg.service.retry_until: retries while Kafka is away, gives up at its deadline, and stops when asked to."""

from __future__ import annotations

import threading

import pytest
from kafka.errors import KafkaConnectionError

from berg.service import StopRequested, retry_until

pytestmark = pytest.mark.unit


class Broker:
    """A build that fails ``failures`` times with Kafka's own error, then answers."""

    def __init__(self, failures: int, stop: threading.Event | None = None, stop_after: int | None = None) -> None:
        self.failures = failures
        self.calls = 0
        self.stop = stop
        self.stop_after = stop_after

    def __call__(self) -> str:
        self.calls += 1
        if self.stop is not None and self.calls == self.stop_after:
            self.stop.set()
        if self.calls <= self.failures:
            raise KafkaConnectionError()
        return "client"


def test_returns_the_client_once_kafka_answers() -> None:
    broker = Broker(failures=0)
    assert retry_until(broker, "producer", timeout_s=60) == "client"
    assert broker.calls == 1


def test_a_stop_while_waiting_ends_the_wait_at_once() -> None:
    stop = threading.Event()
    # SIGTERM arrives during the second attempt; without the stop, this would retry for 600 s.
    broker = Broker(failures=1000, stop=stop, stop_after=2)
    with pytest.raises(StopRequested, match="for the consumer"):
        retry_until(broker, "consumer", timeout_s=600, stop=stop)
    assert broker.calls == 2


def test_the_deadline_still_ends_a_wait_nobody_stops() -> None:
    broker = Broker(failures=1000)
    with pytest.raises(RuntimeError, match="could not reach Kafka for the producer within 0s"):
        retry_until(broker, "producer", timeout_s=0)
    assert broker.calls == 1
