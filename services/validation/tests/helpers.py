"""Shared by the validation rules' tests: the batches' ``now``, event factories, the engine signature.

Great Expectations 1.24 imports the deprecated ``sre_constants`` and ``sre_parse``
modules, which pytest (warnings are errors) turns into a collection error. Until
``pyproject.toml`` carries a filter for it, this module imports GX first with
that one warning ignored, and ``services/validation/conftest.py`` imports this
module before anything else imports GX (conftests load before test modules).
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import BaseModel

from berg.usecase import Stream
from berg_fraud.contracts import LabelV1, TransactionV1
from berg_fraud.use_case import fraud

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "module 'sre_(constants|parse)' is deprecated", DeprecationWarning)
    import great_expectations  # noqa: F401

from berg_validation.frames import build_frame

__all__ = [
    "CATEGORIES",
    "NOW",
    "STREAM",
    "STREAMS",
    "Engine",
    "LabelFactory",
    "TransactionFactory",
    "label_factory",
    "labels_frame",
    "transaction_factory",
    "transactions_frame",
]

STREAMS: tuple[Stream, ...] = fraud().streams
"""The streams validation judges in these tests: the fraud case's (the reference use case)."""
STREAM: dict[str, Stream] = {stream.name: stream for stream in STREAMS}
"""The same, by name (the batch's kind)."""

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
"""The ``now`` of every batch in these tests."""

CATEGORIES = ("5411", "5812", "5999", "4829", "5311", "5541", "5912", "5732")

TransactionFactory = Callable[..., TransactionV1]
LabelFactory = Callable[..., LabelV1]
Engine = Callable[..., Any]
"""``engine(frame, kind, now=NOW) -> Verdict``."""


def _numbers() -> Iterator[int]:
    number = 0
    while True:
        number += 1
        yield number


def transaction_factory() -> TransactionFactory:
    """Plausible transactions, numbered so user, merchant, category and channel vary; keyword overrides."""
    numbers = _numbers()

    def make(**overrides: Any) -> TransactionV1:
        number = next(numbers)
        fields: dict[str, Any] = {
            "event_id": uuid.uuid4(),
            "event_time": NOW - timedelta(minutes=number),
            "user_id": f"user-{number % 37:03d}",
            "merchant_id": f"merchant-{number % 11:03d}",
            "amount": round(5.0 + (number * 7.3) % 120.0, 2),
            "currency": "EUR",
            "merchant_category": CATEGORIES[number % len(CATEGORIES)],
            "channel": "card_not_present" if number % 3 == 0 else "card_present",
            "country": "DE",
        }
        fields.update(overrides)
        return TransactionV1.model_validate(fields)

    return make


def label_factory() -> LabelFactory:
    """Plausible labels; keyword overrides."""
    numbers = _numbers()

    def make(**overrides: Any) -> LabelV1:
        number = next(numbers)
        fields: dict[str, Any] = {
            "event_id": uuid.uuid4(),
            "event_time": NOW - timedelta(hours=number),
            "transaction_event_id": uuid.uuid4(),
            "user_id": f"user-{number % 37:03d}",
            "is_fraud": number % 4 == 0,
            "source": ("chargeback", "customer_report", "manual_review")[number % 3],
        }
        fields.update(overrides)
        return LabelV1.model_validate(fields)

    return make


def transactions_frame(events: Sequence[BaseModel]) -> pd.DataFrame:
    """The fraud case's transactions as validation's frame."""
    return build_frame(STREAM["transactions"], events)


def labels_frame(events: Sequence[BaseModel]) -> pd.DataFrame:
    """The fraud case's labels as validation's frame."""
    return build_frame(STREAM["labels"], events)
