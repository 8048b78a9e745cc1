"""Events as a pandas frame with one column per contract column (needs pandas: validation).

Strings are pandas' ``string`` dtype (Python storage), timestamps
``datetime64[ns, UTC]``, floats ``float64``, integers ``int64`` and booleans
``bool``; ids (UUIDs) are their text. The frame is on a positional
``RangeIndex``: row ``i`` is event ``i``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel

from berg.contracts.shape import Column

__all__ = ["STRING_DTYPE", "columns_frame", "events_frame"]

STRING_DTYPE = pd.StringDtype(storage="python")
"""The dtype of every string column."""


def _series(column: Column, values: list[Any]) -> pd.Series:
    if column.kind == "string":
        return pd.Series([value if isinstance(value, str) else str(value) for value in values], dtype=STRING_DTYPE)
    if column.kind == "timestamp":
        # Contracts hold aware UTC datetimes; utc=True also keeps an empty batch tz-aware.
        return pd.Series(pd.to_datetime(values, utc=True)).astype("datetime64[ns, UTC]")
    dtype = {"float": "float64", "integer": "int64", "boolean": "bool"}[column.kind]
    return pd.Series(values, dtype=dtype)


def columns_frame(columns: tuple[Column, ...], values: Sequence[list[Any]], rows: int) -> pd.DataFrame:
    """The frame of ``rows`` rows whose ``values[i]`` are the values of ``columns[i]``, in row order."""
    return pd.DataFrame(
        {column.name: _series(column, column_values) for column, column_values in zip(columns, values, strict=True)},
        index=pd.RangeIndex(rows),
    )


def events_frame(columns: tuple[Column, ...], events: Sequence[BaseModel]) -> pd.DataFrame:
    """One row per event, in input order, one column per column (by attribute name)."""
    return columns_frame(
        columns, [[getattr(event, column.name) for event in events] for column in columns], len(events)
    )
