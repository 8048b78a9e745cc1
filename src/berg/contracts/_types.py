"""Constrained field types shared by every contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, StringConstraints

__all__ = [
    "CONTRACT_CONFIG",
    "EventId",
    "FiniteFloat",
    "Identifier",
    "UtcDatetime",
]

CONTRACT_CONFIG = ConfigDict(
    extra="forbid",
    frozen=True,
    allow_inf_nan=False,
    str_strip_whitespace=False,
    ser_json_timedelta="float",
)
"""Every contract refuses unknown fields, NaN and infinity, and is immutable."""


def _to_utc(value: datetime) -> datetime:
    # Aware timestamps in any zone are accepted and normalised, so equality and
    # partitioning by event date never depend on the producer's zone.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+05:00 has no UTC datetime. A ValueError is a validation error;
        # an OverflowError would escape pydantic and fail the whole batch (a poison record).
        raise ValueError(f"{value.isoformat()} is outside the range of UTC datetimes") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware timestamp, normalised to UTC; naive timestamps are refused."""

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is neither NaN nor infinite."""

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"),
]
"""A user, merchant or model identifier: 1 to 64 characters, no spaces or control characters."""

EventId = UUID
"""Every event carries a UUID; sinks are idempotent on it."""
