"""Constrained field types shared by every contract."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

__all__ = [
    "CONTRACT_CONFIG",
    "EventId",
    "FiniteFloat",
    "Identifier",
    "JsonBool",
    "JsonNumber",
    "SchemaVersion1",
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


_UNIX_TIMESTAMP = re.compile(r"\s*[-+]?[0-9]+(\.[0-9]*)?\s*")

_PLAIN_ISO_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])",
    re.ASCII,
)
"""The text every producer sends, which ``datetime.fromisoformat`` reads exactly as pydantic does.

Outside it the two parsers differ (``fromisoformat`` takes any separator, an offset of
``+01:60``, the basic format without dashes), so anything else goes to pydantic.
"""


def _utc_datetime(value: Any, pydantic_datetime: ValidatorFunctionWrapHandler) -> datetime:
    # One Python call per timestamp instead of three (a number check before pydantic's
    # parse, the UTC conversion after): these run for every event on every hop.
    if type(value) is str and _PLAIN_ISO_DATETIME.fullmatch(value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:  # 2026-02-30 and the like: pydantic says what is wrong
            parsed = pydantic_datetime(value)
    else:
        # pydantic reads a number, or a string of digits, as seconds (or milliseconds) since 1970:
        # a guess about the unit that a timestamp in ISO 8601 never needs.
        if isinstance(value, int | float) or (isinstance(value, str) and _UNIX_TIMESTAMP.fullmatch(value)):
            raise ValueError("must be an ISO 8601 date and time with a zone, not a number")
        parsed = pydantic_datetime(value)  # refuses naive times, reads every other form it knows
    # Aware timestamps in any zone are accepted and normalised, so equality and
    # partitioning by event date never depend on the producer's zone.
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+05:00 has no UTC datetime. A ValueError is a validation error;
        # an OverflowError would escape pydantic and fail the whole batch (a poison record).
        raise ValueError(f"{parsed.isoformat()} is outside the range of UTC datetimes") from None


UtcDatetime = Annotated[AwareDatetime, WrapValidator(_utc_datetime)]
"""A timezone-aware ISO 8601 timestamp, normalised to UTC; naive timestamps and numbers are refused."""

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is neither NaN nor infinite."""

JsonNumber = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A finite number given as a number: ``true`` or ``"12.5"`` is refused, not read as 1.0 or 12.5."""

JsonBool = Annotated[bool, Strict()]
"""``true`` or ``false``: ``1``, ``"yes"`` or ``"false"`` is refused, not guessed into a verdict."""


def _not_a_bool(value: Any) -> Any:
    # Literal[1] matches True (True == 1), in strict mode too.
    if isinstance(value, bool):
        raise ValueError("must be the number 1, not a boolean")
    return value


SchemaVersion1 = Annotated[Literal[1], BeforeValidator(_not_a_bool)]
"""The ``schema_version`` of a v1 contract: the number 1."""

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"),
]
"""An entity or model identifier: 1 to 64 characters, no spaces or control characters."""

EventId = UUID
"""Every event carries a UUID; sinks are idempotent on it."""
