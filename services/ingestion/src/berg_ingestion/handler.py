"""Ingestion's batch handler: decode, land, publish downstream, dead-letter the rest.

Each raw record is decoded against the contract of its stream (by topic; the
streams are the use case's, see :mod:`berg.usecase`). Good events are
landed (idempotent on ``event_id``) and published to ``*.ingested`` with their
original key, bytes and headers plus ``berg.ingested_at`` and the lineage headers of
:mod:`berg.kafka.lineage` (a record redelivered downstream keeps one identity); records that are too large
or cannot be decoded go to ``berg.dlq``. The handler returns only when the
landing write is durable and the broker has acknowledged every publish, so the
loop's commit never runs ahead of the sinks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel

from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.decoding import RecordRejected, Rejected, decode_contract, decode_each
from berg.kafka.lineage import SOURCE_HEADERS, source_headers
from berg.kafka.producer import CoPartitioner, Outgoing, send_and_wait
from berg.kafka.records import RawRecord
from berg.usecase import Stream
from berg_ingestion.landing import LandingZone
from berg_ingestion.rows import landing_schema, to_row

__all__ = ["INGESTED_AT_HEADER", "IngestionHandler", "IngestionMetrics", "Route", "routes_for"]

INGESTED_AT_HEADER = "berg.ingested_at"


@dataclass(frozen=True)
class Route:
    """Where one raw topic's events go: a stream of the use case."""

    kind: str
    contract: type[BaseModel]
    schema: pa.Schema
    output_topic: str


def routes_for(streams: Sequence[Stream]) -> dict[str, Route]:
    """Each stream's raw topic to its route: the landing folder is the stream's name."""
    return {
        stream.raw_topic: Route(stream.name, stream.contract, landing_schema(stream.contract), stream.ingested_topic)
        for stream in streams
    }


@dataclass(frozen=True)
class IngestionMetrics:
    """Ingestion's own metrics (consumed records, lag and batch time come from the consumer loop)."""

    landed: Counter
    duplicates: Counter
    published: Counter
    stage_seconds: Histogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> IngestionMetrics:
        return cls(
            landed=Counter(
                "berg_ingestion_landed", "Events newly written to the landing zone.", ["kind"], registry=registry
            ),
            duplicates=Counter(
                "berg_ingestion_duplicates",
                "Redelivered events the landing zone already held.",
                ["kind"],
                registry=registry,
            ),
            published=Counter("berg_ingestion_published", "Events published downstream.", ["topic"], registry=registry),
            stage_seconds=Histogram(
                "berg_ingestion_stage_duration_seconds", "Time per batch in each stage.", ["stage"], registry=registry
            ),
        )


class IngestionHandler:
    """Decode, land, publish, dead-letter; see the module docstring."""

    def __init__(
        self,
        landing: LandingZone,
        streams: Sequence[Stream],
        producer: Any,
        dead_letters: DeadLetterPublisher,
        metrics: IngestionMetrics,
        *,
        max_record_bytes: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        publish_timeout_s: float = 30.0,
    ) -> None:
        self._landing = landing
        self._routes = routes_for(streams)
        self._producer = producer
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._max_record_bytes = max_record_bytes
        self._clock = clock
        self._publish_timeout_s = publish_timeout_s
        self._partitioner = CoPartitioner(producer)

    def decode(self, record: RawRecord) -> BaseModel:
        """Decode one raw record against its topic's contract.

        Raises:
            RecordRejected: ``record_too_large``, ``unknown_topic`` or a decoding reason.
        """
        size = len(record.value or b"")
        if size > self._max_record_bytes:
            raise RecordRejected("record_too_large", f"{size} bytes exceeds the limit of {self._max_record_bytes}")
        route = self._routes.get(record.topic)
        if route is None:
            raise RecordRejected("unknown_topic", f"ingestion does not read {record.topic}")
        return decode_contract(route.contract, record)

    def __call__(self, records: Sequence[RawRecord]) -> None:
        ingested_at = self._clock()
        bad: list[Rejected] = []
        decoded: dict[str, tuple[list[RawRecord], list[dict[str, Any]]]] = {}
        for record, event in decode_each(records, self.decode, bad):
            mine = decoded.get(record.topic)
            if mine is None:
                mine = decoded[record.topic] = ([], [])
            mine[0].append(record)
            # The event's landing row, not the event, is kept for the rest of the batch:
            # fewer objects for the garbage collector to promote and scan (see FrameRows
            # in validation, where it matters most).
            mine[1].append(to_row(event, record, ingested_at))
        started = time.perf_counter()
        routed: list[tuple[Route, list[RawRecord]]] = []
        for topic, route in self._routes.items():
            if topic in decoded:
                good, rows = decoded[topic]
                routed.append((route, good))
                landed = self._landing.append(route.kind, rows, route.schema)
                self._metrics.landed.labels(route.kind).inc(landed)
                self._metrics.duplicates.labels(route.kind).inc(len(rows) - landed)
        landed_at = time.perf_counter()
        self._metrics.stage_seconds.labels("land").observe(landed_at - started)
        self._publish(routed, ingested_at)
        self._dead_letters.publish(bad)
        self._metrics.stage_seconds.labels("publish").observe(time.perf_counter() - landed_at)

    def _publish(self, routed: Sequence[tuple[Route, Sequence[RawRecord]]], ingested_at: datetime) -> None:
        stamp = (INGESTED_AT_HEADER, ingested_at.isoformat().encode())
        ours = {INGESTED_AT_HEADER, *SOURCE_HEADERS}

        def outgoing(route: Route, records: Sequence[RawRecord]) -> Iterator[Outgoing]:
            # A generator: each record is built as it is sent, not held for the whole batch.
            for record in records:
                headers = [h for h in record.headers if h[0] not in ours] if record.headers else []
                headers.append(stamp)
                headers += source_headers(record)
                yield Outgoing(
                    route.output_topic,
                    key=record.key,
                    # The bytes as they came: a record refused further down reaches the DLQ unchanged.
                    value=record.value,
                    headers=headers,
                    partition=self._partitioner.partition(route.output_topic, record.partition),
                )

        send_and_wait(
            self._producer,
            (out for route, records in routed for out in outgoing(route, records)),
            self._publish_timeout_s,
        )
        for route, records in routed:
            self._metrics.published.labels(route.output_topic).inc(len(records))
