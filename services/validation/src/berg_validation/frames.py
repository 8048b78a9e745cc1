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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from types import MappingProxyType

import pandas as pd
from pydantic import BaseModel

from berg.contracts.shape import Column, contract_columns, gx_type_names
from berg.contracts.shape_pandas import STRING_DTYPE, events_frame
from berg.usecase import Stream

__all__ = ["STRING_DTYPE", "build_frame", "column_types"]


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


def build_frame(stream: Stream, events: Sequence[BaseModel]) -> pd.DataFrame:
    """The frame of ``events``, which must all be of ``stream``'s contract.

    Raises:
        TypeError: an event is not of the stream's contract.
    """
    for position, event in enumerate(events):
        if not isinstance(event, stream.contract):
            raise TypeError(
                f"event {position} is a {type(event).__name__}, not a {stream.contract.__name__} ({stream.name})"
            )
    return events_frame(_columns(stream.contract), events)
