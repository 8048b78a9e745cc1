"""Decoded events as a pandas DataFrame: the unit both rule engines validate.

One row per event, in input order, on a positional ``RangeIndex`` (row ``i`` is
event ``i``), so a verdict's row numbers point straight back at the records of
the micro-batch. Columns are the contract's fields except ``schema_version``
(the contract already pins it); strings are pandas' ``string`` dtype (Python
storage), timestamps ``datetime64[ns, UTC]``, amounts ``float64`` and
``is_fraud`` ``bool``. A dedicated string dtype rather than ``object`` lets a
type rule check the column's dtype instead of every value, and makes hashing
(Great Expectations fingerprints each batch) cheaper.

Example::

    frame = transactions_frame(events)  # or build_frame("transactions", events)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Literal, TypeVar

import pandas as pd

from berg.contracts import LabelV1, TransactionV1

__all__ = [
    "COLUMN_TYPES",
    "EVENT_KINDS",
    "STRING_DTYPE",
    "EventKind",
    "build_frame",
    "labels_frame",
    "transactions_frame",
]

EventKind = Literal["transactions", "labels"]
"""Which contract a micro-batch holds; its suites are named ``<kind>.rows`` and so on."""

_Event = TypeVar("_Event", TransactionV1, LabelV1)

EVENT_KINDS: tuple[EventKind, ...] = ("transactions", "labels")

# The type of each column, by the names Great Expectations'
# ``expect_column_values_to_be_of_type`` understands. GX checks the dtype of a
# typed column, and each value of an ``object`` column (a frame built elsewhere).
_TRANSACTION_TYPES = {
    "event_id": "str",
    "event_time": "Timestamp",
    "user_id": "str",
    "merchant_id": "str",
    "amount": "float64",
    "currency": "str",
    "merchant_category": "str",
    "channel": "str",
    "country": "str",
}
_LABEL_TYPES = {
    "event_id": "str",
    "event_time": "Timestamp",
    "transaction_event_id": "str",
    "user_id": "str",
    "is_fraud": "bool",
    "source": "str",
}

COLUMN_TYPES: Mapping[EventKind, Mapping[str, str]] = MappingProxyType(
    {"transactions": MappingProxyType(_TRANSACTION_TYPES), "labels": MappingProxyType(_LABEL_TYPES)}
)
"""Column name to type name, per kind, in frame column order."""


STRING_DTYPE = pd.StringDtype(storage="python")
"""The dtype of every string column."""


def _strings(values: list[str]) -> pd.Series:
    return pd.Series(values, dtype=STRING_DTYPE)


def _timestamps(values: list[object]) -> pd.Series:
    # Contracts hold aware UTC datetimes; utc=True also keeps an empty batch tz-aware.
    return pd.Series(pd.to_datetime(values, utc=True)).astype("datetime64[ns, UTC]")


def transactions_frame(events: Sequence[TransactionV1]) -> pd.DataFrame:
    """One row per transaction, in input order, on a ``RangeIndex``."""
    return pd.DataFrame(
        {
            "event_id": _strings([str(event.event_id) for event in events]),
            "event_time": _timestamps([event.event_time for event in events]),
            "user_id": _strings([event.user_id for event in events]),
            "merchant_id": _strings([event.merchant_id for event in events]),
            "amount": pd.Series([event.amount for event in events], dtype="float64"),
            "currency": _strings([event.currency for event in events]),
            "merchant_category": _strings([event.merchant_category for event in events]),
            "channel": _strings([event.channel for event in events]),
            "country": _strings([event.country for event in events]),
        },
        index=pd.RangeIndex(len(events)),
    )


def labels_frame(events: Sequence[LabelV1]) -> pd.DataFrame:
    """One row per label, in input order, on a ``RangeIndex``."""
    return pd.DataFrame(
        {
            "event_id": _strings([str(event.event_id) for event in events]),
            "event_time": _timestamps([event.event_time for event in events]),
            "transaction_event_id": _strings([str(event.transaction_event_id) for event in events]),
            "user_id": _strings([event.user_id for event in events]),
            "is_fraud": pd.Series([event.is_fraud for event in events], dtype="bool"),
            "source": _strings([event.source for event in events]),
        },
        index=pd.RangeIndex(len(events)),
    )


def build_frame(kind: EventKind, events: Sequence[TransactionV1 | LabelV1]) -> pd.DataFrame:
    """The frame of ``events``, which must all be of ``kind``.

    Raises:
        TypeError: an event is not of the contract ``kind`` names.
    """
    if kind == "transactions":
        return transactions_frame(_all_of(events, TransactionV1, kind))
    return labels_frame(_all_of(events, LabelV1, kind))


def _all_of(events: Sequence[TransactionV1 | LabelV1], contract: type[_Event], kind: EventKind) -> list[_Event]:
    checked: list[_Event] = []
    for position, event in enumerate(events):
        if not isinstance(event, contract):
            raise TypeError(f"event {position} is a {type(event).__name__}, not a {contract.__name__} ({kind})")
        checked.append(event)
    return checked
