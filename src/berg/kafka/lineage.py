"""Lineage headers: where a record entered Berg, carried on every copy downstream.

Ingestion stamps the raw topic, partition and offset it read a record from.
Delivery is at-least-once, so a record can reach a later stage more than once
(at other offsets); these headers give every copy the same identity, which is
how dead letters and replays are deduplicated.
"""

from __future__ import annotations

from collections.abc import Iterable

from berg.kafka.records import RawRecord

__all__ = ["SOURCE_HEADERS", "source_headers", "source_identity"]

SOURCE_HEADERS = ("berg.source.topic", "berg.source.partition", "berg.source.offset")


def source_headers(record: RawRecord) -> list[tuple[str, bytes]]:
    """The lineage headers for a record read from the raw topics."""
    values = (record.topic, str(record.partition), str(record.offset))
    return [(name, value.encode()) for name, value in zip(SOURCE_HEADERS, values, strict=True)]


def source_identity(headers: Iterable[tuple[str, bytes | None]]) -> tuple[str, str, str] | None:
    """``(topic, partition, offset)`` of the raw record behind these headers, if they carry it."""
    found = {name: (value or b"").decode() for name, value in headers if name in SOURCE_HEADERS}
    if len(found) != len(SOURCE_HEADERS):
        return None
    topic, partition, offset = (found[name] for name in SOURCE_HEADERS)
    return topic, partition, offset
