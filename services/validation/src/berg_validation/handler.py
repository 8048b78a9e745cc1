"""Validation's batch handler: Great Expectations over each micro-batch, then route every row.

Records from each stream's ingested topic are decoded against the stream's
contract (they passed ingestion, so a failure here is dead-lettered like anywhere
else), grouped by stream into a DataFrame and validated. Rows that fail
row-level expectations go to ``berg.dlq`` with reason
``expectation_failed`` and the failed expectation names in the message; when a
batch fails a batch-level expectation, all its rows go to the DLQ with reason
``batch_quarantined`` and the failed names. Passing rows are forwarded to
the stream's valid topic with their original bytes, key and headers, plus ``berg.validated_at``.
The handler returns only when the broker acknowledged every record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel

from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.decoding import RecordRejected, Rejected, decode_contract, decode_each
from berg.kafka.producer import CoPartitioner, Outgoing, send_and_wait
from berg.kafka.records import RawRecord
from berg.usecase import Stream
from berg_validation.frames import FrameRows
from berg_validation.suites import ResultSink, Suites

__all__ = ["VALIDATED_AT_HEADER", "ValidationHandler", "ValidationMetrics"]

VALIDATED_AT_HEADER = "berg.validated_at"


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
        streams: Sequence[Stream],
        producer: Any,
        dead_letters: DeadLetterPublisher,
        metrics: ValidationMetrics,
        *,
        results: ResultSink | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        publish_timeout_s: float = 30.0,
    ) -> None:
        self._suites = suites
        self._routes: Mapping[str, Stream] = {stream.ingested_topic: stream for stream in streams}
        self._producer = producer
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._results = results
        self._clock = clock
        self._publish_timeout_s = publish_timeout_s
        self._partitioner = CoPartitioner(producer)

    @property
    def topics(self) -> list[str]:
        """The topics the handler reads: each stream's ingested topic."""
        return list(self._routes)

    def decode(self, record: RawRecord) -> BaseModel:
        """Decode one ingested record against its stream's contract."""
        stream = self._routes.get(record.topic)
        if stream is None:
            raise RecordRejected("unknown_topic", f"validation does not read {record.topic}")
        return decode_contract(stream.contract, record)

    def __call__(self, records: Sequence[RawRecord]) -> None:
        rejected: list[Rejected] = []
        batches: dict[str, tuple[list[RawRecord], FrameRows]] = {}
        seen: set[bytes | None] = set()
        for record, event in decode_each(records, self.decode, rejected):
            # At-least-once upstream: a crash before a commit puts the same record on
            # the topic twice, and both copies can land in one micro-batch. The copy
            # is not a conflict (that would be the same event_id with other content,
            # which the uniqueness expectation refuses): validate and forward it once.
            # The record's bytes are its identity: equal bytes decode to the same event_id
            # and content, and bytes cache their hash.
            if record.value in seen:
                self._metrics.rows.labels(self._routes[record.topic].name, "redelivered").inc()
                continue
            seen.add(record.value)
            batch = batches.get(record.topic)
            if batch is None:
                batch = batches[record.topic] = ([], FrameRows(self._routes[record.topic]))
            batch[0].append(record)
            # The event's row, not the event: see FrameRows.
            batch[1].add(event)
        now = self._clock()
        passing: list[tuple[Stream, list[RawRecord]]] = []
        for topic, stream in self._routes.items():
            if topic in batches:
                ok, bad = self._judge(stream, *batches[topic], now)
                passing.append((stream, ok))
                rejected += bad
        self._forward(passing, now)
        self._dead_letters.publish(rejected)

    def _judge(
        self, stream: Stream, records: Sequence[RawRecord], rows: FrameRows, now: datetime
    ) -> tuple[list[RawRecord], list[Rejected]]:
        started = time.perf_counter()
        kind = stream.name
        verdict = self._suites.validate(rows.frame(), kind, now, sink=self._results)
        self._metrics.seconds.labels(kind).observe(time.perf_counter() - started)
        for name, count in verdict.failure_counts.items():
            if count:
                self._metrics.failed_by_expectation.labels(kind, name).inc(count)
        if verdict.quarantined:
            self._metrics.quarantined.labels(kind).inc()
            self._metrics.rows.labels(kind, "quarantined").inc(len(records))
            reason = RecordRejected("batch_quarantined", "batch failed: " + ", ".join(verdict.batch_failures))
            return [], [Rejected(record, reason) for record in records]
        ok: list[RawRecord] = []
        bad: list[Rejected] = []
        for row, record in enumerate(records):
            failures = verdict.failures_of(row)
            if failures:
                bad.append(Rejected(record, RecordRejected("expectation_failed", "failed: " + ", ".join(failures))))
            else:
                ok.append(record)
        self._metrics.rows.labels(kind, "passed").inc(len(ok))
        self._metrics.rows.labels(kind, "failed").inc(len(bad))
        return ok, bad

    def _forward(self, passing: Sequence[tuple[Stream, Sequence[RawRecord]]], now: datetime) -> None:
        stamp = (VALIDATED_AT_HEADER, now.isoformat().encode())

        def outgoing(stream: Stream, records: Sequence[RawRecord]) -> Iterator[Outgoing]:
            # A generator: each record is built as it is sent, not held for the whole batch.
            for record in records:
                if record.headers:
                    headers = [h for h in record.headers if h[0] != VALIDATED_AT_HEADER]
                    headers.append(stamp)
                else:
                    headers = [stamp]
                yield Outgoing(
                    stream.valid_topic,
                    key=record.key,
                    value=record.value,
                    headers=headers,
                    partition=self._partitioner.partition(stream.valid_topic, record.partition),
                )

        send_and_wait(
            self._producer,
            (out for stream, records in passing for out in outgoing(stream, records)),
            self._publish_timeout_s,
        )
