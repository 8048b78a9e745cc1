"""Shadow scoring: a challenger scores a share of live requests after the champion answered them.

The request path hands its :class:`~berg_serving.predictions.ScoredEvent` records to
:meth:`ShadowScoring.offer`, which never blocks and never raises: it keeps the events
:func:`~berg_serving.shadow_sampling.is_shadowed` picks and puts them in a bounded queue (a row that does
not fit is dropped and counted, ``berg_serving_shadow_dropped_total{reason="queue_full"}``). One thread
takes them in batches, scores each batch with the version in the shadow's
:class:`~berg_serving.champion.ChampionSlot` on the feature rows the champion scored (nothing is looked
up again), decides with the champion's :class:`~berg_serving.decisions.DecisionPolicy` and the shadow's
own threshold, and produces one :class:`~berg.contracts.ShadowPredictionV1` per row to
``predictions.shadow``. A shadow that raises is counted (``berg_serving_shadow_failures_total``) and
logged at most once a minute; the champion's answer was sent before and is never touched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from berg.contracts import ShadowPredictionV1
from berg.kafka.producer import encode_event
from berg_serving.decisions import DecisionPolicy
from berg_serving.features import feature_matrix
from berg_serving.kafka_sender import QueuedKafkaSender
from berg_serving.metrics import ServingMetrics
from berg_serving.predictions import ScoredEvent, Scores
from berg_serving.shadow_records import shadow_record
from berg_serving.shadow_sampling import is_shadowed

if TYPE_CHECKING:
    from berg_serving.champion import Champion, ChampionSlot

__all__ = ["ShadowScoring"]

log = logging.getLogger(__name__)

_LOG_EVERY_S = 60.0


class _RateLimitedWarning:
    """A warning logged at most once per ``every_s``, saying how many were held back meanwhile: a shadow that
    fails on every row must not flood the log of a server answering thousands of requests a second."""

    def __init__(self, every_s: float = _LOG_EVERY_S) -> None:
        self._every_s = every_s
        self._next_at = 0.0
        self._held_back = 0

    def warn(self, message: str, *args: object, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now < self._next_at:
            self._held_back += 1
            return
        suffix = f" ({self._held_back} more like it since the last)" if self._held_back else ""
        log.warning(message + suffix, *args, exc_info=exc_info)
        self._next_at = now + self._every_s
        self._held_back = 0


class ShadowScoring(QueuedKafkaSender[ScoredEvent]):
    """A bounded queue of shadowed events and the one thread that scores them and produces the records.

    Example:
        >>> shadow = ShadowScoring(slot, policy, lambda: open_producer(kafka), "predictions.shadow", 10_000,
        ...                        share=0.1, metrics=metrics, key="user_id")
        >>> shadow.start()
        >>> shadow.offer(scored)          # after the answer is built; never blocks
        >>> shadow.close(timeout_s=2.0)   # at shutdown: score and send what is queued, flush

    Args:
        slot: holds the shadow version (its watcher empties it when the alias is cleared).
        policy: the champion's decision rule, applied with the shadow's threshold.
        open_producer: builds the Kafka producer (retried from the thread until Kafka answers).
        topic: where the records go.
        capacity: most events waiting to be scored.
        share: of scored events, the share the shadow scores (the card's ``rollout.shadow.share``).
        metrics: predictions, failures, drops and the queue's length are counted here.
        key: the scored event's field the records are keyed by (the scored stream's key, as the prediction log).
        batch_rows: most rows scored in one call of the shadow.
        retry_s: wait between attempts to open the producer.
        clock: when the shadow scored (``shadow_scored_at``).
    """

    def __init__(
        self,
        slot: ChampionSlot,
        policy: DecisionPolicy,
        open_producer: Callable[[], Any],
        topic: str,
        capacity: int,
        *,
        share: float,
        metrics: ServingMetrics,
        key: str,
        batch_rows: int = 256,
        retry_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(open_producer, capacity, thread_name="shadow-scoring", batch_rows=batch_rows, retry_s=retry_s)
        self._slot = slot
        self._policy = policy
        self._topic = topic
        self._share = share
        self._metrics = metrics
        self._key = key
        self._clock = clock
        self._warning = _RateLimitedWarning()
        metrics.shadow_queue_rows.set_function(self.queued)

    def offer(self, scored: Sequence[ScoredEvent]) -> None:
        """Queue the sampled events for the shadow without waiting; nothing while no shadow is set."""
        if self._slot.current is None:
            return
        for record in scored:
            if not is_shadowed(record.event_id, self._share):
                continue
            if not self._put(record):
                self._metrics.shadow_dropped.labels("queue_full").inc()

    def _needs_producer(self) -> bool:
        # No shadow yet: no connection to Kafka for nothing.
        return self._slot.current is not None

    def _unreachable(self, error: Exception) -> None:
        self._warning.warn("shadow scoring: Kafka not reachable (%s); retrying in %.1fs", error, self._retry_s)

    def _left_unsent(self, count: int) -> None:
        self._metrics.shadow_dropped.labels("shutdown").inc(count)
        log.warning("%d shadowed events were not scored: the shadow was closed first", count)

    def _handle(self, producer: Any, batch: list[ScoredEvent]) -> None:
        shadow = self._slot.current
        if shadow is None:
            self._metrics.shadow_dropped.labels("cleared").inc(len(batch))
            return
        try:
            scores = self._score(shadow, batch)
        except Exception as error:
            self._metrics.shadow_failures.labels("score").inc(len(batch))
            self._warning.warn("shadow %s failed to score %d rows: %r", shadow.version, len(batch), error)
            return
        scored_at = self._clock()
        for row, scored in enumerate(batch):
            try:
                record = shadow_record(scored, scores, row, scored_at=scored_at)
            except ValidationError as error:
                self._metrics.shadow_failures.labels("invalid").inc()
                self._warning.warn("shadow record of %s is not a ShadowPredictionV1: %s", scored.event_id, error)
                continue
            self._send(producer, scored, record)

    def _score(self, shadow: Champion, batch: list[ScoredEvent]) -> Scores:
        """The shadow's scores of the batch's rows, from the feature columns the champion scored."""
        matrices = []
        start = 0
        # Consecutive rows of one request share its frame: one matrix per run of them.
        while start < len(batch):
            frame = batch[start].frame
            end = start
            while end < len(batch) and batch[end].frame is frame:
                end += 1
            rows = [scored.row for scored in batch[start:end]]
            matrices.append(feature_matrix(frame.columns, shadow.features)[rows])
            start = end
        values = shadow.predict(np.vstack(matrices)).tolist()
        if len(values) != len(batch):
            raise ValueError(f"{len(values)} scores for {len(batch)} rows")
        return Scores(
            model_version=shadow.version,
            threshold=shadow.threshold,
            scores=values,
            decisions=self._policy.decide_all(values, shadow.threshold),
        )

    def _send(self, producer: Any, scored: ScoredEvent, record: ShadowPredictionV1) -> None:
        try:
            key = str(getattr(scored.event, self._key)).encode("utf-8")
            future = producer.send(self._topic, key=key, value=encode_event(record))
        except Exception as error:
            self._warning.warn("shadow scoring: send failed (%s)", error)
            self._metrics.shadow_failures.labels("send").inc()
            return
        future.add_callback(self._sent)
        future.add_errback(self._failed)

    def _sent(self, _: object) -> None:
        self._metrics.shadow_predictions.inc()

    def _failed(self, error: BaseException) -> None:
        self._warning.warn("shadow scoring: Kafka refused a record (%s)", error)
        self._metrics.shadow_failures.labels("send").inc()
