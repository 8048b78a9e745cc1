"""The prediction log: every scored event to the ``predictions`` topic, off the request path.

A request hands its :class:`~berg_serving.predictions.ScoredEvent` records
to :meth:`PredictionLog.offer`, which never blocks: they wait in a bounded queue
that one thread drains into Kafka (a :class:`~berg.contracts.PredictionV3` per
record, keyed like the scored stream: by the event's value of the stream's key). When Kafka is slow or down
and the queue is full, new records are dropped and counted
(``berg_serving_prediction_log_dropped_total{reason="queue_full"}``); a send Kafka
refuses is counted too (``send_failed``). Nothing is lost silently, and serving
never waits for Kafka: monitoring reads the counters and alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from berg.kafka.producer import encode_event
from berg_serving.kafka_sender import QueuedKafkaSender
from berg_serving.metrics import ServingMetrics
from berg_serving.predictions import ScoredEvent, to_prediction

__all__ = ["PredictionLog"]

log = logging.getLogger(__name__)


class PredictionLog(QueuedKafkaSender[ScoredEvent]):
    """A bounded queue of scored events and the thread that produces them to Kafka.

    Example:
        >>> prediction_log = PredictionLog(lambda: open_producer(kafka), "predictions", 10_000, metrics, key="user_id")
        >>> prediction_log.start()
        >>> prediction_log.offer(scored)          # never blocks
        >>> prediction_log.close(timeout_s=5.0)   # at shutdown: send what is queued, flush

    Args:
        open_producer: builds the Kafka producer (retried from the thread until Kafka answers).
        topic: where the predictions go.
        capacity: how many records may wait.
        metrics: sent, dropped and queued are counted here.
        key: the scored event's field records are keyed by (the scored stream's key, so one entity's
            predictions stay in order within a partition, like its events).
        retry_s: wait between attempts to open the producer.
    """

    def __init__(
        self,
        open_producer: Callable[[], Any],
        topic: str,
        capacity: int,
        metrics: ServingMetrics,
        *,
        key: str,
        retry_s: float = 1.0,
    ) -> None:
        super().__init__(open_producer, capacity, thread_name="prediction-log", retry_s=retry_s)
        self._topic = topic
        self._key = key
        self._metrics = metrics
        metrics.log_queued.set_function(self.queued)

    def offer(self, scored: Sequence[ScoredEvent]) -> None:
        """Queue records for Kafka without waiting; a record that does not fit is dropped and counted."""
        for record in scored:
            if not self._put(record):
                self._metrics.log_dropped.labels("queue_full").inc()

    def _left_unsent(self, count: int) -> None:
        self._metrics.log_dropped.labels("shutdown").inc(count)
        log.warning("%d predictions were not logged: the log was closed before Kafka took them", count)

    def _unreachable(self, error: Exception) -> None:
        log.warning("prediction log: Kafka not reachable (%s); retrying in %.1fs", error, self._retry_s)

    def _handle(self, producer: Any, batch: list[ScoredEvent]) -> None:
        for record in batch:
            self._send(producer, record)

    def _send(self, producer: Any, record: ScoredEvent) -> None:
        try:
            prediction = to_prediction(record)
        except ValidationError:
            log.exception("prediction %s does not fit PredictionV3; not logged", record.prediction_id)
            self._metrics.log_dropped.labels("invalid").inc()
            return
        try:
            key = str(getattr(record.event, self._key)).encode("utf-8")
            future = producer.send(self._topic, key=key, value=encode_event(prediction))
        except Exception as error:
            log.warning("prediction log: send failed (%s)", error)
            self._metrics.log_dropped.labels("send_failed").inc()
            return
        future.add_callback(self._sent)
        future.add_errback(self._failed)

    def _sent(self, _: object) -> None:
        self._metrics.log_sent.inc()

    def _failed(self, error: BaseException) -> None:
        log.warning("prediction log: Kafka refused a prediction (%s)", error)
        self._metrics.log_dropped.labels("send_failed").inc()
