"""The prediction log never blocks a request: a full queue drops and counts, Kafka's refusals are counted,
close() sends what is queued. A stand-in producer here; the real broker is in tests/integration/serving."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from services.serving.tests.helpers import NOW, transaction, wait_for
from services.serving.tests.test_features import online

from berg.contracts import PredictionV3
from berg_serving.metrics import ServingMetrics
from berg_serving.prediction_log import PredictionLog
from berg_serving.predictions import ScoredEvent, Scores, score_events
from tests.fraud_serving import ASSEMBLER

pytestmark = pytest.mark.unit


class Future:
    def __init__(self, error: Exception | None) -> None:
        self._error = error

    def add_callback(self, callback: Callable[[Any], None]) -> None:
        if self._error is None:
            callback(None)

    def add_errback(self, errback: Callable[[Exception], None]) -> None:
        if self._error is not None:
            errback(self._error)


class Producer:
    """Records sends; ``gate`` holds every send until set; ``fail`` makes Kafka refuse them."""

    def __init__(self, *, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = fail
        self.closed = False

    def send(self, topic: str, *, key: bytes, value: bytes) -> Future:
        self.gate.wait(10)
        self.sent.append((topic, key, value))
        return Future(RuntimeError("broker says no") if self.fail else None)

    def flush(self, timeout: float) -> None:
        return None

    def close(self, timeout: float) -> None:
        self.closed = True


def scored(count: int) -> list[ScoredEvent]:
    batch = [transaction(user_id=f"user-{i}") for i in range(count)]
    frame = ASSEMBLER.assemble(batch, online(*[(None, None)] * count))
    scores = Scores("v0001", 0.5, [0.25] * count, ["approve"] * count)
    return score_events(batch, frame, scores, model_name="fraud", served_at=NOW, entity_keys=ASSEMBLER.entity_keys)


def sample(metrics_registry: CollectorRegistry, name: str, **labels: str) -> float:
    return metrics_registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_every_prediction_reaches_the_topic_keyed_by_the_scored_streams_key(registry: CollectorRegistry) -> None:
    producer = Producer()
    log = PredictionLog(lambda: producer, "predictions", 100, ServingMetrics.register(registry), key="user_id")
    log.start()
    records = scored(5)
    log.offer(records)
    log.close(timeout_s=5)
    assert [key for _, key, _ in producer.sent] == [f"user-{i}".encode() for i in range(5)]
    predictions = [PredictionV3.model_validate_json(value) for _, _, value in producer.sent]
    assert [p.event_id for p in predictions] == [r.prediction_id for r in records]
    assert [p.entities["user_id"] for p in predictions] == [f"user-{i}" for i in range(5)]
    assert {topic for topic, _, _ in producer.sent} == {"predictions"}
    assert sample(registry, "berg_serving_prediction_log_sent_total") == 5
    assert producer.closed


def test_a_full_queue_drops_and_counts_without_blocking(registry: CollectorRegistry) -> None:
    producer = Producer()
    producer.gate.clear()  # Kafka hangs
    log = PredictionLog(lambda: producer, "predictions", 3, ServingMetrics.register(registry), key="user_id")
    log.start()
    log.offer(scored(1))
    wait_for(lambda: sample(registry, "berg_serving_prediction_log_queued") == 0, 120, "the first record in hand")
    log.offer(scored(10))  # returns at once: 3 queued, 7 dropped
    assert sample(registry, "berg_serving_prediction_log_dropped_total", reason="queue_full") == 7
    assert sample(registry, "berg_serving_prediction_log_queued") == 3
    producer.gate.set()
    log.close(timeout_s=5)
    assert len(producer.sent) == 4
    assert sample(registry, "berg_serving_prediction_log_sent_total") == 4


def test_refused_sends_are_counted(registry: CollectorRegistry) -> None:
    producer = Producer(fail=True)
    log = PredictionLog(lambda: producer, "predictions", 10, ServingMetrics.register(registry), key="user_id")
    log.start()
    log.offer(scored(2))
    log.close(timeout_s=5)
    assert sample(registry, "berg_serving_prediction_log_dropped_total", reason="send_failed") == 2


def test_kafka_down_at_start_is_retried_and_what_never_went_out_is_counted(registry: CollectorRegistry) -> None:
    attempts: list[int] = []

    def unreachable() -> Producer:
        attempts.append(1)
        raise ConnectionError("no brokers")

    log = PredictionLog(unreachable, "predictions", 10, ServingMetrics.register(registry), key="user_id", retry_s=0.05)
    log.start()
    log.offer(scored(4))
    wait_for(lambda: len(attempts) >= 2, 120, "a retry")
    log.close(timeout_s=0.5)
    assert sample(registry, "berg_serving_prediction_log_dropped_total", reason="shutdown") == 4
