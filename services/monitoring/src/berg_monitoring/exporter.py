"""The exporter's loop: read predictions, shadow predictions and labels, keep the windows, recompute the statistics.

One thread does it all, so the state needs no lock: it polls the topics,
applies the records, and every ``recompute_interval_s`` computes a new
snapshot that the collector swaps in. A scrape never waits for a computation.

The exporter owns no offsets: at start it assigns itself every partition of
its topics and seeks to ``lookback_s`` ago (by record time), rebuilding the
windows from the log. It therefore runs as one replica; two would each see
everything, which is harmless but useless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from berg.contracts import PredictionLogReader, ShadowPredictionV1
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.decoding import RecordRejected, Rejected, decode_contract
from berg.kafka.records import RawRecord
from berg.kafka.security import client_security
from berg.kafka.undecodable import UndecodableBatchError, UndecodableBatches, poll_records
from berg.problem.card import ProblemCard
from berg.settings import KafkaSettings
from berg.usecase import UseCase
from berg_monitoring.metrics import MonitoringMetrics, SnapshotCollector
from berg_monitoring.references import ReferenceBook
from berg_monitoring.settings import MonitoringSettings
from berg_monitoring.shadow_comparison import ShadowSettings, compare_shadows
from berg_monitoring.shadow_window import ShadowWindows
from berg_monitoring.snapshot import Reference, SnapshotSettings, compute_snapshot
from berg_monitoring.windows import LabelOutcome, MonitoringState, Stream, Verdict

__all__ = ["Exporter", "open_reader"]

log = logging.getLogger(__name__)


def open_reader(kafka: KafkaSettings, topics: Sequence[str], lookback_s: float, timeout_s: float) -> Any:
    """A consumer assigned every partition of ``topics``, positioned ``lookback_s`` back in record time.

    Raises:
        RuntimeError: a topic did not exist within ``timeout_s``, or this client may not describe it
            (a broker with ACLs shows a client only the topics it may use).
    """
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        client_id=f"{kafka.client_id}-monitoring",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=kafka.request_timeout_ms,
        **client_security(kafka),
    )
    deadline = time.monotonic() + timeout_s
    partitions: list[TopicPartition] = []
    for topic in topics:
        while not (found := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                consumer.close()
                raise RuntimeError(
                    f"topic {topic!r} does not exist, or the broker's ACLs hide it from this client's user; "
                    "create it (berg up does) or grant the user Read on it, and start again"
                )
            time.sleep(0.5)
        partitions.extend(TopicPartition(topic, partition) for partition in sorted(found))
    consumer.assign(partitions)
    start_ms = int((time.time() - lookback_s) * 1000)
    offsets = consumer.offsets_for_times(dict.fromkeys(partitions, start_ms))
    # Explicit end offsets rather than seek_to_end(), whose lazy reset would happen inside the first poll.
    ends = consumer.end_offsets(partitions)
    for partition in partitions:
        found = offsets.get(partition)
        consumer.seek(partition, ends[partition] if found is None else found.offset)
    log.info(
        "reading from %s",
        {f"{p.topic}/{p.partition}": consumer.position(p) for p in partitions},
        extra={"lookback_s": lookback_s},
    )
    return consumer


class Exporter:
    """Applies records to the state and refreshes the snapshot; :meth:`step` is one turn of the loop."""

    def __init__(
        self,
        settings: MonitoringSettings,
        consumer: Any,
        references: ReferenceBook,
        card: ProblemCard,
        collector: SnapshotCollector,
        metrics: MonitoringMetrics,
        dead_letters: DeadLetterPublisher,
        undecodable: UndecodableBatches | None = None,
        *,
        use_case: UseCase,
        model_name: str,
    ) -> None:
        self._settings = settings
        self._model_name = model_name
        self._consumer = consumer
        self._references = references
        self._costs = card.costs
        self._collector = collector
        self._metrics = metrics
        self._dead_letters = dead_letters
        self._undecodable = undecodable or UndecodableBatches(dead_letters)
        self._label_contract = use_case.labels.contract
        self._prediction_log = PredictionLogReader(use_case.legacy_predictions)
        self._label_join = use_case.label_join
        self.state = MonitoringState(
            drift=settings.drift_spec(),
            quality_window=settings.quality_window,
            pending_capacity=settings.pending_capacity,
            label_history=settings.label_history,
            max_versions=settings.max_versions,
            label_horizon_s=card.target.label_horizon_days * 86_400.0,
            amount_feature=use_case.label_join.amount,
        )
        self.shadows = ShadowWindows(settings.shadow_window, settings.max_versions)
        self._snapshot_settings = SnapshotSettings(settings.min_drift_rows, settings.min_labels, settings.min_positives)
        self._shadow_settings = ShadowSettings(settings.min_drift_rows, settings.min_labels, settings.min_positives)
        self._next_snapshot = 0.0
        self.last_poll: float | None = None
        self._evicted = (0, 0)
        self._expired = 0
        self._silenced: frozenset[str] = frozenset()
        # Where each partition ended when the reader started: until it has read a partition that far, that
        # partition's records from before the start may still be older than what the others have shown.
        self._start_ends: dict[Any, int] = {
            partition: end
            for partition, end in consumer.end_offsets(list(consumer.assignment())).items()
            if consumer.position(partition) < end
        }
        self._await_unread()

    def _stream(self, topic: str) -> Stream | None:
        """The watermark's stream a topic is; None for the shadow log, which matures nothing (its labels are the
        champion's join's)."""
        if topic == self._settings.predictions_topic:
            return "scored"
        return None if topic == self._settings.shadow_predictions_topic else "labels"

    def step(self) -> int:
        """Poll once, apply what came, refresh the snapshot when due; the number of records applied."""
        try:
            records = poll_records(self._consumer, self._settings.poll_timeout_ms, 2_000)
        except UndecodableBatchError as error:
            # Dead-lettered and skipped, so the other partitions (and this one after it) go on.
            self._undecodable.move_past(self._consumer, error.batch)
            records = []
        if self.last_poll is None:
            log.info("first poll answered")
        self.last_poll = time.monotonic()
        self.apply(records)
        if self._start_ends:
            self._await_unread()
        self._count_resolutions()
        if time.monotonic() >= self._next_snapshot:
            self.refresh()
        return len(records)

    def apply(self, records: Sequence[RawRecord]) -> None:
        """Apply records of any of the topics; invalid ones go to the dead-letter topic with the reason."""
        rejected: list[Rejected] = []
        model = self._model_name
        now = time.time()
        for record in records:
            try:
                if record.topic == self._settings.predictions_topic:
                    prediction = decode_contract(self._prediction_log, record)
                    if prediction.model_name != model:
                        # Another model's prediction still says how far this partition has come.
                        self.state.advance("scored", record.partition, prediction.scored_event_time.timestamp())
                        continue
                    self._metrics.predictions.labels(model, prediction.model_version).inc()
                    self._metrics.last_event.labels(model, "predictions").set(now)
                    self._count_label(self.state.add_prediction(prediction, record.partition))
                elif record.topic == self._settings.shadow_predictions_topic:
                    shadow = decode_contract(ShadowPredictionV1, record)
                    if shadow.model_name == model:
                        self.shadows.add(shadow)
                        self._metrics.last_event.labels(model, "shadow_predictions").set(now)
                else:
                    label = Verdict.of(decode_contract(self._label_contract, record), self._label_join)
                    self._metrics.last_event.labels(model, "labels").set(now)
                    self._count_label(self.state.add_label(label, record.partition))
            except RecordRejected as error:
                rejected.append(Rejected(record, error))
                self._metrics.invalid.labels(record.topic).inc()
        if rejected:
            log.warning("dead-lettering %d invalid records", len(rejected))
            self._dead_letters.publish(rejected)
        self._count_resolutions()

    def _await_unread(self) -> None:
        self._start_ends = {p: end for p, end in self._start_ends.items() if self._consumer.position(p) < end}
        awaited = ((self._stream(p.topic), p.partition) for p in self._start_ends)
        self.state.await_partitions({(stream, partition) for stream, partition in awaited if stream is not None})

    def _count_resolutions(self) -> None:
        self._metrics.labels.labels("expired").inc(self.state.expired - self._expired)
        self._expired = self.state.expired
        evicted = (self.state.evicted_predictions, self.state.evicted_labels)
        self._metrics.evicted.labels("prediction").inc(evicted[0] - self._evicted[0])
        self._metrics.evicted.labels("label").inc(evicted[1] - self._evicted[1])
        self._evicted = evicted

    def _count_label(self, outcome: LabelOutcome | None) -> None:
        if outcome is None or outcome.kind == "repeat":
            return
        self._metrics.labels.labels("unmatched" if outcome.kind == "waiting" else outcome.kind).inc()
        if outcome.delay_s is not None:
            self._metrics.label_delay.labels(self._model_name).observe(max(0.0, outcome.delay_s))

    def refresh(self) -> None:
        """Recompute every statistic and publish the snapshot."""
        started = time.perf_counter()
        production = self._references.production()
        silenced = production.silenced(datetime.now(UTC), timedelta(seconds=self._settings.retired_grace_s))
        if silenced != self._silenced:
            log.info("versions out of production past the grace period, not exported: %s", sorted(silenced))
            self._silenced = silenced
        references: dict[str, Reference] = {}
        for version in self.state.versions:
            reference = self._references.reference(version) if version not in silenced else None
            if reference is not None:
                references[version] = reference
        # Partitions still short of where they ended at the start are being caught up on, each at its own pace.
        catching_up = any(p.topic == self._settings.predictions_topic for p in self._start_ends)
        snapshot = compute_snapshot(
            self.state,
            references,
            self._costs,
            self._snapshot_settings,
            production.data_end,
            silenced,
            drift_ready=not catching_up,
            shadows=compare_shadows(self.shadows, self.state.resolution, self._shadow_settings, silenced),
        )
        self._collector.publish(snapshot)
        self._metrics.duration.observe(time.perf_counter() - started)
        self._metrics.computed_at.set(time.time())
        self._next_snapshot = time.monotonic() + self._settings.recompute_interval_s
