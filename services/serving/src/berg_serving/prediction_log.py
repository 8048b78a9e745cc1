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
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from berg.kafka.producer import encode_event
from berg_serving.metrics import ServingMetrics
from berg_serving.predictions import ScoredEvent, to_prediction

__all__ = ["PredictionLog"]

log = logging.getLogger(__name__)

_POLL_S = 0.2


class PredictionLog:
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
        self._open_producer = open_producer
        self._topic = topic
        self._key = key
        self._metrics = metrics
        self._retry_s = retry_s
        self._queue: queue.Queue[ScoredEvent] = queue.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        metrics.log_queued.set_function(self._queue.qsize)

    def start(self) -> None:
        """Start the sending thread."""
        self._thread.start()

    def offer(self, scored: Sequence[ScoredEvent]) -> None:
        """Queue records for Kafka without waiting; a record that does not fit is dropped and counted."""
        for record in scored:
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                self._metrics.log_dropped.labels("queue_full").inc()

    def close(self, timeout_s: float) -> None:
        """Send what is queued for up to ``timeout_s``, flush and close the producer; count what is left."""
        self._deadline = time.monotonic() + timeout_s
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s + 5.0)
        left = self._queue.qsize()
        if left:
            self._metrics.log_dropped.labels("shutdown").inc(left)
            log.warning("%d predictions were not logged: the log was closed before Kafka took them", left)

    def _run(self) -> None:
        producer = None
        try:
            while not (self._stop.is_set() and (self._queue.empty() or time.monotonic() > self._deadline)):
                if producer is None:
                    if self._stop.is_set():
                        break  # Kafka never answered: what is queued is counted by close()
                    producer = self._connect()
                    continue
                try:
                    record = self._queue.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                self._send(producer, record)
        finally:
            if producer is not None:
                remaining = max(0.0, self._deadline - time.monotonic()) if self._stop.is_set() else 5.0
                try:
                    producer.flush(timeout=min(remaining, 30.0))
                    producer.close(timeout=1.0)
                except Exception:
                    log.warning("the prediction log's producer did not close cleanly", exc_info=True)

    def _connect(self) -> Any:
        try:
            return self._open_producer()
        except Exception as error:
            log.warning("prediction log: Kafka not reachable (%s); retrying in %.1fs", error, self._retry_s)
            self._stop.wait(self._retry_s)
            return None

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
