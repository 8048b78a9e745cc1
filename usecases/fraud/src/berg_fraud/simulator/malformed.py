"""Malformed transaction records: one named way to break a valid transaction each, and who should refuse it.

Each class is a function of a valid :class:`~berg_fraud.contracts.TransactionV1`
that returns the bytes to put on ``transactions.raw``. :data:`MALFORMED_CLASSES`
says which stage is expected to refuse each one:

- ``ingestion``: the record cannot be decoded against the v1 contract
  (``berg.kafka.decoding.decode_contract`` raises ``RecordRejected`` with the
  class's ``reason``), or, for ``oversized``, is refused for its size before
  decoding (``record_too_large``).
- ``validation``: the record decodes as a ``TransactionV1`` but breaks a
  semantic rule (event time not in the future, positive amount, known
  merchant category); the validation service names the failed expectation.

Example:
    >>> record = MALFORMED_CLASSES["negative_amount"].corrupt(transaction)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

from berg.simulator.traffic import RefusingStage
from berg_fraud.contracts import TransactionV1
from berg_fraud.simulator.profiles import KNOWN_MERCHANT_CATEGORIES

__all__ = [
    "DEFAULT_FUTURE_OFFSET",
    "DEFAULT_OPTIONS",
    "DEFAULT_OVERSIZED_BYTES",
    "MALFORMED_CLASSES",
    "MALFORMED_CLASS_NAMES",
    "Corruption",
    "MalformedClass",
    "MalformedOptions",
    "classes_refused_by",
    "future_timestamp",
    "invalid_json",
    "missing_field",
    "nan_or_infinity",
    "negative_amount",
    "non_utf8",
    "not_an_object",
    "oversized",
    "unknown_category",
    "unknown_field",
    "unparsable_timestamp",
    "wrong_type",
]

DEFAULT_OVERSIZED_BYTES = 1024 * 1024 + 1024
"""An ``oversized`` record is at least this long: 1 MiB and 1 KiB."""

DEFAULT_FUTURE_OFFSET = timedelta(days=30)
"""How far ahead a ``future_timestamp`` record's event time lies."""

_REQUIRED_FIELDS = (
    "event_id",
    "event_time",
    "user_id",
    "merchant_id",
    "amount",
    "merchant_category",
    "channel",
    "country",
)


@dataclass(frozen=True, slots=True)
class MalformedOptions:
    """Knobs of the classes that need more than the transaction."""

    oversized_bytes: int = DEFAULT_OVERSIZED_BYTES
    """Minimum length of an ``oversized`` record."""
    future_offset: timedelta = DEFAULT_FUTURE_OFFSET
    """A ``future_timestamp`` record's event time is this far after its reference."""
    future_reference: datetime | None = None
    """The reference of ``future_timestamp``: the later of this and the transaction's
    event time. Set it to the wall-clock time of the run when the simulated events lie
    in the past, so the timestamp is in the future for validation too."""

    def __post_init__(self) -> None:
        if self.oversized_bytes < 1:
            raise ValueError(f"oversized_bytes must be positive, got {self.oversized_bytes}")
        if self.future_offset <= timedelta(0):
            raise ValueError(f"future_offset must be positive, got {self.future_offset}")
        if self.future_reference is not None and self.future_reference.tzinfo is None:
            raise ValueError("future_reference must be timezone-aware")


DEFAULT_OPTIONS = MalformedOptions()
"""Options a class uses when none are given."""


class Corruption(Protocol):
    """Turns a valid transaction into the bytes of a malformed record."""

    def __call__(self, transaction: TransactionV1, options: MalformedOptions = ..., /) -> bytes: ...


def _fields(transaction: TransactionV1) -> dict[str, Any]:
    return transaction.model_dump(mode="json")


def _dump(fields: Any) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode("utf-8")


def non_utf8(transaction: TransactionV1, _options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """The JSON encoded as Latin-1 with an accented merchant name: not UTF-8."""
    fields = _fields(transaction)
    fields["merchant_id"] = f"{fields['merchant_id']}-café"
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("latin-1")


def invalid_json(transaction: TransactionV1, _options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """The JSON cut off halfway, as a crashed writer leaves it."""
    text = _dump(_fields(transaction))
    return text[: len(text) // 2]


def not_an_object(transaction: TransactionV1, _options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """Valid JSON, but an array of the field values instead of an object."""
    return _dump(list(_fields(transaction).values()))


def missing_field(transaction: TransactionV1, _options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """One required field left out (which one follows from the event id)."""
    fields = _fields(transaction)
    del fields[_REQUIRED_FIELDS[transaction.event_id.int % len(_REQUIRED_FIELDS)]]
    return _dump(fields)


def wrong_type(transaction: TransactionV1, _options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """The amount as an object (``{"value": ..., "currency": ...}``) instead of a number."""
    fields = _fields(transaction)
    fields["amount"] = {"value": transaction.amount, "currency": transaction.currency}
    return _dump(fields)


def nan_or_infinity(transaction: TransactionV1, _options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """The amount as the JSON token ``NaN`` or ``Infinity`` (alternating by event id)."""
    fields = _fields(transaction)
    fields["amount"] = float("nan") if transaction.event_id.int % 2 else float("inf")
    return json.dumps(fields, separators=(",", ":"), allow_nan=True).encode("utf-8")


def unparsable_timestamp(transaction: TransactionV1, _options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """The event time in a local, zone-less format no ISO 8601 parser reads (``31/12/2024 23:59``)."""
    fields = _fields(transaction)
    fields["event_time"] = transaction.event_time.strftime("%d/%m/%Y %H:%M")
    return _dump(fields)


def future_timestamp(transaction: TransactionV1, options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """A well-formed event time ``future_offset`` after the later of the event and ``future_reference``."""
    reference = transaction.event_time
    if options.future_reference is not None:
        reference = max(reference, options.future_reference)
    return _dump(
        transaction.model_copy(update={"event_time": reference + options.future_offset}).model_dump(mode="json")
    )


def oversized(transaction: TransactionV1, options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """The transaction with a padding field that makes the record at least ``oversized_bytes`` long."""
    fields = _fields(transaction)
    fields["padding"] = ""
    base = len(_dump(fields))
    fields["padding"] = "x" * max(options.oversized_bytes - base, 0)
    return _dump(fields)


def unknown_field(transaction: TransactionV1, _options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """A field the v1 contract does not have (``loyalty_tier``)."""
    fields = _fields(transaction)
    fields["loyalty_tier"] = "gold"
    return _dump(fields)


def negative_amount(transaction: TransactionV1, _options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """The amount negated: a finite number, so it decodes, but not a payment."""
    fields = _fields(transaction)
    fields["amount"] = -abs(transaction.amount)
    return _dump(fields)


def unknown_category(transaction: TransactionV1, _options: MalformedOptions = DEFAULT_OPTIONS, /) -> bytes:
    """A four-digit merchant category that is not in the known set (which one follows from the event id)."""
    code = transaction.event_id.int % 10_000
    while f"{code:04d}" in KNOWN_MERCHANT_CATEGORIES:
        code = (code + 1) % 10_000
    fields = _fields(transaction)
    fields["merchant_category"] = f"{code:04d}"
    return _dump(fields)


@dataclass(frozen=True, slots=True)
class MalformedClass:
    """A way to break a transaction, and the stage that must refuse the result."""

    name: str
    stage: RefusingStage
    reason: str | None
    """The dead-letter reason ingestion gives; ``None`` for validation classes,
    where the validation service names the failed expectation."""
    rule: str
    """What is wrong with the record, in words."""
    corrupt: Corruption


def _malformed_class(
    corrupt: Corruption, stage: RefusingStage, reason: str | None, rule: str
) -> tuple[str, MalformedClass]:
    name = getattr(corrupt, "__name__", "")
    return name, MalformedClass(name, stage, reason, rule, corrupt)


MALFORMED_CLASSES: Mapping[str, MalformedClass] = MappingProxyType(
    dict(
        [
            _malformed_class(non_utf8, "ingestion", "undecodable", "bytes are not UTF-8"),
            _malformed_class(invalid_json, "ingestion", "undecodable", "not valid JSON"),
            _malformed_class(not_an_object, "ingestion", "contract_violation", "JSON, but not an object"),
            _malformed_class(missing_field, "ingestion", "contract_violation", "a required field is missing"),
            _malformed_class(wrong_type, "ingestion", "contract_violation", "a field has the wrong JSON type"),
            _malformed_class(nan_or_infinity, "ingestion", "contract_violation", "the amount is NaN or Infinity"),
            _malformed_class(
                unparsable_timestamp, "ingestion", "contract_violation", "the event time is not an ISO 8601 time"
            ),
            _malformed_class(oversized, "ingestion", "record_too_large", "the record is larger than 1 MiB"),
            _malformed_class(unknown_field, "ingestion", "contract_violation", "a field the contract does not have"),
            _malformed_class(future_timestamp, "validation", None, "the event time lies in the future"),
            _malformed_class(negative_amount, "validation", None, "the amount is not positive"),
            _malformed_class(unknown_category, "validation", None, "the merchant category is not a known one"),
        ]
    )
)
"""Every malformed class by name: the stage that refuses it, ingestion's reason, the rule and the function."""

MALFORMED_CLASS_NAMES: tuple[str, ...] = tuple(MALFORMED_CLASSES)
"""Names of every malformed class, in table order."""


def classes_refused_by(stage: RefusingStage) -> tuple[str, ...]:
    """Names of the malformed classes that ``stage`` is expected to refuse."""
    return tuple(name for name, spec in MALFORMED_CLASSES.items() if spec.stage == stage)
