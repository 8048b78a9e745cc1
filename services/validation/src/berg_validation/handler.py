"""Validation's batch handler: Great Expectations over each micro-batch, then route every row.

Records from ``*.ingested`` are decoded (they passed ingestion, so a failure
here is dead-lettered like anywhere else), grouped by kind into a DataFrame and
validated. Rows that fail row-level expectations go to ``berg.dlq`` with reason
``expectation_failed`` and the failed expectation names in the message; when a
batch fails a batch-level expectation, all its rows go to the DLQ with reason
``batch_quarantined`` and the failed names. Passing rows are forwarded to
``*.valid`` with their original bytes, key and headers, plus ``berg.validated_at``.
The handler returns only when the broker acknowledged every record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from berg.contracts import LabelV1, TransactionV1
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.decoding import Decoded, RecordRejected, Rejected, decode_contract, split_batch
from berg.kafka.producer import CoPartitioner, Outgoing, send_and_wait
from berg.kafka.records import RawRecord
from berg.kafka.topics import LABELS_INGESTED, LABELS_VALID, TRANSACTIONS_INGESTED, TRANSACTIONS_VALID
from berg_validation.frames import EventKind, build_frame
from berg_validation.suites import ResultSink, Suites

__all__ = ["VALIDATED_AT_HEADER", "ValidationHandler", "ValidationMetrics"]

VALIDATED_AT_HEADER = "berg.validated_at"


@dataclass(frozen=True)
class _Route:
    kind: EventKind
    contract: type[TransactionV1] | type[LabelV1]
    output_topic: str


_ROUTES = {
    TRANSACTIONS_INGESTED: _Route("transactions", TransactionV1, TRANSACTIONS_VALID),
    LABELS_INGESTED: _Route("labels", LabelV1, LABELS_VALID),
}


@dataclass(frozen=True)
class ValidationMetrics:
    """Validation's own metrics."""

    rows: Counter
    failed_by_expectation: Counter
    quarantined: Counter
    seconds: Histogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ValidationMetrics:
        return cls(
            rows=Counter(
                "berg_validation_rows", "Rows validated, by kind and outcome.", ["kind", "outcome"], registry=registry
            ),
            failed_by_expectation=Counter(
                "berg_validation_expectation_failures",
                "Rows failing each row-level expectation (1 per batch for batch-level ones).",
                ["kind", "expectation"],
                registry=registry,
            ),
            quarantined=Counter(
                "berg_validation_batches_quarantined", "Micro-batches held back whole.", ["kind"], registry=registry
            ),
            seconds=Histogram(
                "berg_validation_duration_seconds",
                "Time to validate one micro-batch of one kind.",
                ["kind"],
                registry=registry,
            ),
        )


class ValidationHandler:
    """See the module docstring."""

    def __init__(
        self,
        suites: Suites,
        producer: Any,
        dead_letters: DeadLetterPublisher,
        metrics: ValidationMetrics,
        *,
        results: ResultSink | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        publish_timeout_s: float = 30.0,
    ) -> None:
        self._suites = suites
        self._producer = producer
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._results = results
        self._clock = clock
        self._publish_timeout_s = publish_timeout_s
        self._partitioner = CoPartitioner(producer)

    @staticmethod
    def decode(record: RawRecord) -> TransactionV1 | LabelV1:
        """Decode one ingested record against its topic's contract."""
        route = _ROUTES.get(record.topic)
        if route is None:
            raise RecordRejected("unknown_topic", f"validation does not read {record.topic}")
        return decode_contract(route.contract, record)

    def __call__(self, records: Sequence[RawRecord]) -> None:
        good, rejected = split_batch(records, self.decode)
        good = self._drop_redeliveries(good)
        now = self._clock()
        passing: list[tuple[_Route, RawRecord]] = []
        for topic, route in _ROUTES.items():
            mine = [item for item in good if item.record.topic == topic]
            if mine:
                ok, bad = self._judge(route, mine, now)
                passing += [(route, record) for record in ok]
                rejected += bad
        self._forward(passing, now)
        self._dead_letters.publish(rejected)

    def _drop_redeliveries(
        self, items: Sequence[Decoded[TransactionV1 | LabelV1]]
    ) -> list[Decoded[TransactionV1 | LabelV1]]:
        # At-least-once upstream: a crash before a commit puts the same record on
        # the topic twice, and both copies can land in one micro-batch. The copy
        # is not a conflict (that would be the same event_id with other content,
        # which the uniqueness expectation refuses): validate and forward it once.
        seen: set[tuple[str, bytes | None]] = set()
        kept = []
        for item in items:
            identity = (str(item.value.event_id), item.record.value)
            if identity in seen:
                self._metrics.rows.labels(_ROUTES[item.record.topic].kind, "redelivered").inc()
                continue
            seen.add(identity)
            kept.append(item)
        return kept

    def _judge(
        self, route: _Route, items: Sequence[Decoded[TransactionV1 | LabelV1]], now: datetime
    ) -> tuple[list[RawRecord], list[Rejected]]:
        started = time.perf_counter()
        verdict = self._suites.validate(
            build_frame(route.kind, [item.value for item in items]), route.kind, now, sink=self._results
        )
        self._metrics.seconds.labels(route.kind).observe(time.perf_counter() - started)
        for name, count in verdict.failure_counts.items():
            if count:
                self._metrics.failed_by_expectation.labels(route.kind, name).inc(count)
        if verdict.quarantined:
            self._metrics.quarantined.labels(route.kind).inc()
            self._metrics.rows.labels(route.kind, "quarantined").inc(len(items))
            reason = RecordRejected("batch_quarantined", "batch failed: " + ", ".join(verdict.batch_failures))
            return [], [Rejected(item.record, reason) for item in items]
        ok: list[RawRecord] = []
        bad: list[Rejected] = []
        for row, item in enumerate(items):
            failures = verdict.failures_of(row)
            if failures:
                bad.append(
                    Rejected(item.record, RecordRejected("expectation_failed", "failed: " + ", ".join(failures)))
                )
            else:
                ok.append(item.record)
        self._metrics.rows.labels(route.kind, "passed").inc(len(ok))
        self._metrics.rows.labels(route.kind, "failed").inc(len(bad))
        return ok, bad

    def _forward(self, passing: Sequence[tuple[_Route, RawRecord]], now: datetime) -> None:
        stamp = (VALIDATED_AT_HEADER, now.isoformat().encode())
        outgoing = [
            Outgoing(
                route.output_topic,
                key=record.key,
                value=record.value,
                headers=[*(h for h in record.headers if h[0] != VALIDATED_AT_HEADER), stamp],
                partition=self._partitioner.partition(route.output_topic, record.partition),
            )
            for route, record in passing
        ]
        send_and_wait(self._producer, outgoing, self._publish_timeout_s)
