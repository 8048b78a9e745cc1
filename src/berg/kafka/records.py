"""The consumed record as Berg code sees it: raw bytes plus where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Headers", "RawRecord"]

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kafka record, undecoded."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int

    @classmethod
    def from_consumer_record(cls, record: Any) -> RawRecord:
        """Copy a kafka-python ``ConsumerRecord`` (consumed without deserializers)."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            # Most records carry no headers; skip building a generator for them.
            headers=tuple((name, value or b"") for name, value in record.headers) if record.headers else (),
            timestamp_ms=record.timestamp,
        )

    @property
    def coordinates(self) -> str:
        """``topic/partition@offset``, for logs and error messages."""
        return f"{self.topic}/{self.partition}@{self.offset}"
