"""A contract's columns as an arrow schema (needs pyarrow: ingestion, the features library)."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from berg.contracts.shape import Column, ColumnKind

__all__ = ["ARROW_TIMESTAMP", "arrow_fields"]

ARROW_TIMESTAMP = pa.timestamp("us", tz="UTC")
"""Event times at microsecond precision in UTC, as every Berg parquet file stores them."""

_ARROW_TYPES: Mapping[ColumnKind, pa.DataType] = {
    "string": pa.string(),
    "timestamp": ARROW_TIMESTAMP,
    "float": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
}


def arrow_fields(columns: tuple[Column, ...], *, nullable: bool = True) -> list[pa.Field]:
    """One arrow field per column, in order; ids (UUIDs) are strings."""
    return [pa.field(column.name, _ARROW_TYPES[column.kind], nullable=nullable) for column in columns]
