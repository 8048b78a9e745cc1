"""The dead-letter envelope, contract v1.

A dead-lettered record keeps the original key, value, headers and timestamp
untouched; why it failed travels in extra headers, after the Kafka Connect DLQ
convention (``__connect.errors.*``) but under Berg's own ``berg.errors.``
prefix. This model is those headers, typed: build one where a record fails,
turn it into headers with :meth:`DeadLetterV1.to_headers`, and read it back
with :meth:`DeadLetterV1.from_headers` when replaying the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from berg.contracts._types import CONTRACT_CONFIG, UtcDatetime

__all__ = ["HEADER_PREFIX", "MAX_MESSAGE_LENGTH", "DeadLetterV1", "ReasonCode", "original_headers"]

HEADER_PREFIX = "berg.errors."
MAX_MESSAGE_LENGTH = 2_000

ReasonCode = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
"""Machine-readable reason, e.g. ``undecodable``, ``contract_violation``, ``expectation_failed``."""
StageName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]*$")]

_FIELDS_TO_HEADERS = {
    "schema_version": "schema.version",
    "stage": "stage",
    "reason": "reason",
    "error_class": "exception.class.name",
    "error_message": "exception.message",
    "original_topic": "topic",
    "original_partition": "partition",
    "original_offset": "offset",
    "failed_at": "failed.at",
}


class DeadLetterV1(BaseModel):
    """Why one record could not go on, and where it came from."""

    model_config = CONTRACT_CONFIG

    schema_version: Literal[1] = 1
    stage: StageName
    """The Berg stage that refused the record (``ingestion``, ``validation``...)."""
    reason: ReasonCode
    error_class: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    error_message: Annotated[str, StringConstraints(max_length=MAX_MESSAGE_LENGTH)]
    original_topic: Annotated[str, StringConstraints(min_length=1, max_length=249)]
    original_partition: Annotated[int, Field(ge=0)]
    original_offset: Annotated[int, Field(ge=0)]
    failed_at: UtcDatetime

    @staticmethod
    def truncate(message: str) -> str:
        """Cut an error message to what the envelope holds, marking the cut."""
        if len(message) <= MAX_MESSAGE_LENGTH:
            return message
        return message[: MAX_MESSAGE_LENGTH - 3] + "..."

    def to_headers(self) -> list[tuple[str, bytes]]:
        """The envelope as Kafka headers (UTF-8 values), to append after the original headers."""
        headers = []
        for field, suffix in _FIELDS_TO_HEADERS.items():
            value = getattr(self, field)
            text = value.isoformat() if isinstance(value, datetime) else str(value)
            headers.append((HEADER_PREFIX + suffix, text.encode("utf-8")))
        return headers

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes | None]]) -> DeadLetterV1:
        """Read the envelope back from a dead-lettered record's headers.

        Raises:
            pydantic.ValidationError: when a header is missing or malformed.
        """
        by_suffix = {
            name.removeprefix(HEADER_PREFIX): (value or b"").decode("utf-8", errors="replace")
            for name, value in headers
            if name.startswith(HEADER_PREFIX)
        }
        values: dict[str, object] = {
            field: by_suffix[suffix] for field, suffix in _FIELDS_TO_HEADERS.items() if suffix in by_suffix
        }
        version = values.get("schema_version")
        if isinstance(version, str) and version.isdigit():
            # Literal fields do not coerce strings; every other field does.
            values["schema_version"] = int(version)
        return cls.model_validate(values)


def original_headers(headers: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The headers a dead-lettered record had before it failed (for a replay)."""
    return [(name, value) for name, value in headers if not name.startswith(HEADER_PREFIX)]
