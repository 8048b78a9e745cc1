"""Lineage headers: where a record entered Berg, carried on every copy downstream.

Ingestion stamps the raw topic, partition and offset it read a record from.
Delivery is at-least-once, so a record can reach a later stage more than once
(at other offsets); these headers give every copy the same identity, which is
how dead letters and replays are deduplicated.
"""

from __future__ import annotations

from collections.abc import Iterable

from berg.contracts.dead_letter import DeadLetterV1
from berg.kafka.records import RawRecord

__all__ = ["SOURCE_HEADERS", "dead_letter_origin", "source_headers", "source_identity"]

SOURCE_HEADERS = ("berg.source.topic", "berg.source.partition", "berg.source.offset")
_TOPIC, _PARTITION, _OFFSET = SOURCE_HEADERS


def source_headers(record: RawRecord) -> list[tuple[str, bytes]]:
    """The lineage headers for a record read from the raw topics."""
    # Spelled out rather than zipped with SOURCE_HEADERS: ingestion builds these for every record.
    return [
        (_TOPIC, record.topic.encode()),
        (_PARTITION, str(record.partition).encode()),
        (_OFFSET, str(record.offset).encode()),
    ]


def source_identity(headers: Iterable[tuple[str, bytes | None]]) -> tuple[str, str, str] | None:
    """``(topic, partition, offset)`` of the raw record behind these headers, if they carry it."""
    found = {name: (value or b"").decode() for name, value in headers if name in SOURCE_HEADERS}
    if len(found) != len(SOURCE_HEADERS):
        return None
    topic, partition, offset = (found[name] for name in SOURCE_HEADERS)
    return topic, partition, offset


def dead_letter_origin(headers: Iterable[tuple[str, bytes]]) -> tuple[str, str, str]:
    """The raw record behind a dead letter: its lineage if a later stage refused it, else where it failed.

    Two dead letters with the same origin are one refused record delivered twice.

    Raises:
        pydantic.ValidationError: the headers carry neither lineage nor a dead-letter envelope.
    """
    headers = list(headers)
    origin = source_identity(headers)
    if origin is not None:
        return origin
    envelope = DeadLetterV1.from_headers(headers)
    return envelope.original_topic, str(envelope.original_partition), str(envelope.original_offset)
