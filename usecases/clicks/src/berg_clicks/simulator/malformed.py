"""Malformed impressions: named ways to break a valid impression, each with the stage that must refuse it.

- ``ingestion``: the bytes do not decode against :class:`~berg_clicks.contracts.ImpressionV1`
  (``berg.kafka.decoding.decode_contract`` raises ``RecordRejected`` with the class's ``reason``).
- ``validation``: the record decodes, but breaks the :class:`~berg_clicks.rules.ClicksRules` value
  rule on the class's ``field``; the validation service names it.

Example:
    >>> value = MALFORMED_CLASSES["zero_bid"].corrupt(impression, rng, None)
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, Protocol

from berg.simulator.traffic import RefusingStage
from berg_clicks.contracts import ImpressionV1
from berg_clicks.rules import ClicksRules

__all__ = ["FUTURE_OFFSET", "MALFORMED_CLASSES", "Corruption", "MalformedClass"]

FUTURE_OFFSET = timedelta(days=1)
"""How far ahead of its reference a ``future_event_time`` record's event time lies."""

_DEFAULT_MAX_BID = ClicksRules().max_bid


class Corruption(Protocol):
    """Turns a valid impression into the bytes of a malformed record."""

    def __call__(self, impression: ImpressionV1, rng: random.Random, future_reference: datetime | None, /) -> bytes: ...


def _fields(impression: ImpressionV1) -> dict[str, Any]:
    return impression.model_dump(mode="json")


def _dump(fields: Any) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode("utf-8")


def truncated_json(impression: ImpressionV1, rng: random.Random, _future: datetime | None, /) -> bytes:
    """The JSON cut off at a random point, as a crashed writer leaves it."""
    text = _dump(_fields(impression))
    return text[: rng.randrange(1, len(text) - 1)]


def not_utf8(impression: ImpressionV1, _rng: random.Random, _future: datetime | None, /) -> bytes:
    """The JSON in Latin-1 with an accented campaign id: not UTF-8."""
    fields = _fields(impression)
    fields["campaign_id"] = f"{fields['campaign_id']}-été"
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("latin-1")


def missing_viewer(impression: ImpressionV1, _rng: random.Random, _future: datetime | None, /) -> bytes:
    """No ``viewer_id``: an ad server that lost its cookie."""
    fields = _fields(impression)
    del fields["viewer_id"]
    return _dump(fields)


def bid_as_text(impression: ImpressionV1, _rng: random.Random, _future: datetime | None, /) -> bytes:
    """The bid as a string with its currency (``"0.42 USD"``), not a number."""
    fields = _fields(impression)
    fields["bid"] = f"{impression.bid:.2f} USD"
    return _dump(fields)


def unknown_device(impression: ImpressionV1, _rng: random.Random, _future: datetime | None, /) -> bytes:
    """A device the contract does not know (``smart_tv``)."""
    fields = _fields(impression)
    fields["device"] = "smart_tv"
    return _dump(fields)


def negative_slot(impression: ImpressionV1, _rng: random.Random, _future: datetime | None, /) -> bytes:
    """A slot above the page (``-1``): an off-by-one in the ad server."""
    fields = _fields(impression)
    fields["slot"] = -1
    return _dump(fields)


def zero_bid(impression: ImpressionV1, _rng: random.Random, _future: datetime | None, /) -> bytes:
    """A bid of 0: a house ad nobody paid for, passed off as a sold impression."""
    return _dump(impression.model_copy(update={"bid": 0.0}).model_dump(mode="json"))


def bid_above_cap(impression: ImpressionV1, _rng: random.Random, _future: datetime | None, /) -> bytes:
    """The bid in micro-units (a million times too large): far above the rules' largest bid."""
    bid = max(impression.bid * 1_000_000, _DEFAULT_MAX_BID * 10)
    return _dump(impression.model_copy(update={"bid": bid}).model_dump(mode="json"))


def unknown_placement(impression: ImpressionV1, _rng: random.Random, _future: datetime | None, /) -> bytes:
    """A placement the rules do not know (``popup``)."""
    return _dump(impression.model_copy(update={"placement": "popup"}).model_dump(mode="json"))


def future_event_time(impression: ImpressionV1, _rng: random.Random, future: datetime | None, /) -> bytes:
    """An event time :data:`FUTURE_OFFSET` after the later of the impression's and ``future``: a skewed clock."""
    reference = impression.event_time if future is None else max(impression.event_time, future)
    return _dump(impression.model_copy(update={"event_time": reference + FUTURE_OFFSET}).model_dump(mode="json"))


@dataclass(frozen=True, slots=True)
class MalformedClass:
    """A way to break an impression, and who must refuse the result."""

    name: str
    stage: RefusingStage
    reason: Literal["undecodable", "contract_violation"] | None
    """For ``ingestion``: the dead-letter reason decoding gives. ``None`` for ``validation``."""
    field: str | None
    """For ``validation``: the field whose value rule the record breaks. ``None`` for ``ingestion``."""
    corrupt: Corruption


def _ingestion(corrupt: Corruption, reason: Literal["undecodable", "contract_violation"]) -> MalformedClass:
    return MalformedClass(corrupt.__name__, "ingestion", reason, None, corrupt)  # type: ignore[attr-defined]


def _validation(corrupt: Corruption, field: str) -> MalformedClass:
    return MalformedClass(corrupt.__name__, "validation", None, field, corrupt)  # type: ignore[attr-defined]


MALFORMED_CLASSES: Mapping[str, MalformedClass] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            _ingestion(truncated_json, "undecodable"),
            _ingestion(not_utf8, "undecodable"),
            _ingestion(missing_viewer, "contract_violation"),
            _ingestion(bid_as_text, "contract_violation"),
            _ingestion(unknown_device, "contract_violation"),
            _ingestion(negative_slot, "contract_violation"),
            _validation(zero_bid, "bid"),
            _validation(bid_above_cap, "bid"),
            _validation(unknown_placement, "placement"),
            _validation(future_event_time, "event_time"),
        )
    }
)
"""Every malformed class by name, in the order the simulator draws from."""
