"""Decoded events as a pandas DataFrame: the unit both rule engines validate.

One row per event, in input order, on a positional ``RangeIndex`` (row ``i`` is
event ``i``), so a verdict's row numbers point straight back at the records of
the micro-batch. Columns are the stream's contract's fields except
``schema_version`` (the contract already pins it), derived by
:mod:`berg.contracts.shape`; strings are pandas' ``string`` dtype (Python
storage), timestamps ``datetime64[ns, UTC]``, numbers ``float64``/``int64`` and
booleans ``bool``. A dedicated string dtype rather than ``object`` lets a type
rule check the column's dtype instead of every value, and makes hashing (Great
Expectations fingerprints each batch) cheaper.

A stream's name (``orders``, ``refunds``) is the batch's *kind*: its suites
are named ``<kind>.rows`` and so on, and metrics carry it.

Example::

    frame = build_frame(use_case.scored, events)

    rows = FrameRows(use_case.scored)  # or one event at a time, without keeping them
    for event in events:
        rows.add(event)
    frame = rows.frame()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Literal, get_args, get_origin

import pandas as pd
from pydantic import BaseModel

from berg.contracts.shape import Column, contract_columns, gx_type_names
from berg.contracts.shape_pandas import STRING_DTYPE, columns_frame
from berg.usecase import Stream

__all__ = ["STRING_DTYPE", "FrameRows", "build_frame", "column_types"]


@cache
def _columns(contract: type[BaseModel]) -> tuple[Column, ...]:
    # The contract pins its version: a column of one value says nothing a rule could check.
    return contract_columns(contract, exclude={"schema_version"} & set(contract.model_fields))


@cache
def column_types(contract: type[BaseModel]) -> Mapping[str, str]:
    """Column name to type name, in frame column order, by the names Great Expectations'
    ``expect_column_values_to_be_of_type`` understands.

    GX checks the dtype of a typed column, and each value of an ``object`` column (a frame built elsewhere).
    """
    return MappingProxyType(gx_type_names(_columns(contract)))


def _holds_str(annotation: Any) -> bool:
    return annotation is str or (
        get_origin(annotation) is Literal and all(isinstance(value, str) for value in get_args(annotation))
    )


class FrameRows:
    """The rows of a frame of ``stream``'s events, gathered one event at a time.

    Each event's values are kept as a tuple of plain values (ids as their text), not the
    event: a micro-batch of 20,000 pydantic models is 100,000 objects (model, fields, the
    set of fields given, UUID, wrapper) that the garbage collector promotes and scans in
    every full collection until the batch is done, where a tuple of strings, numbers and
    datetimes is one it stops tracking at its first pass.
    """

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._columns = _columns(stream.contract)
        names = [column.name for column in self._columns]
        self._values = attrgetter(*names) if len(names) != 1 else lambda event: (getattr(event, names[0]),)
        fields = stream.contract.model_fields
        # String columns whose values are not str (ids): converted as each row is added, so
        # the row holds no object the collector tracks. Any other non-str value that turns up
        # is still converted, by the frame.
        self._ids = [
            i
            for i, column in enumerate(self._columns)
            if column.kind == "string" and not _holds_str(fields[column.name].annotation)
        ]
        self._rows: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, event: BaseModel) -> None:
        """Add ``event``'s row.

        Raises:
            TypeError: the event is not of the stream's contract.
        """
        if not isinstance(event, self._stream.contract):
            raise TypeError(
                f"event {len(self._rows)} is a {type(event).__name__}, "
                f"not a {self._stream.contract.__name__} ({self._stream.name})"
            )
        row: tuple[Any, ...] = self._values(event)
        for i in self._ids:
            if not isinstance(row[i], str):
                row = (*row[:i], str(row[i]), *row[i + 1 :])
        self._rows.append(row)

    def frame(self) -> pd.DataFrame:
        """The frame of the events added so far, in order."""
        values = [list(column) for column in zip(*self._rows, strict=True)] or [[] for _ in self._columns]
        return columns_frame(self._columns, values, len(self._rows))


def build_frame(stream: Stream, events: Sequence[BaseModel]) -> pd.DataFrame:
    """The frame of ``events``, which must all be of ``stream``'s contract.

    Raises:
        TypeError: an event is not of the stream's contract.
    """
    rows = FrameRows(stream)
    for event in events:
        rows.add(event)
    return rows.frame()
