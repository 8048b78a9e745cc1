"""Decoded events as a pandas DataFrame: the unit both rule engines validate.

One row per event, in input order, on a positional ``RangeIndex`` (row ``i`` is
event ``i``), so a verdict's row numbers point straight back at the records of
the micro-batch. Columns are the contract's fields except ``schema_version``
(the contract already pins it), derived by :mod:`berg.contracts.shape`; strings are pandas' ``string`` dtype (Python
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
from berg.contracts.shape import Column, contract_columns, gx_type_names
from berg.contracts.shape_pandas import STRING_DTYPE, events_frame

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

_COLUMNS: Mapping[EventKind, tuple[Column, ...]] = {
    "transactions": contract_columns(TransactionV1, exclude={"schema_version"}),
    "labels": contract_columns(LabelV1, exclude={"schema_version"}),
}

# The type of each column, by the names Great Expectations'
# ``expect_column_values_to_be_of_type`` understands. GX checks the dtype of a
# typed column, and each value of an ``object`` column (a frame built elsewhere).
COLUMN_TYPES: Mapping[EventKind, Mapping[str, str]] = MappingProxyType(
    {kind: MappingProxyType(gx_type_names(columns)) for kind, columns in _COLUMNS.items()}
)
"""Column name to type name, per kind, in frame column order."""


def transactions_frame(events: Sequence[TransactionV1]) -> pd.DataFrame:
    """One row per transaction, in input order, on a ``RangeIndex``."""
    return events_frame(_COLUMNS["transactions"], events)


def labels_frame(events: Sequence[LabelV1]) -> pd.DataFrame:
    """One row per label, in input order, on a ``RangeIndex``."""
    return events_frame(_COLUMNS["labels"], events)


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
