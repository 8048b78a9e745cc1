"""A contract's columns, read from its pydantic JSON schema: the one definition of a record's shape.

Every table-like form of an event (a landing-zone parquet file, a label-store
file, a validation frame, a V2 inference request) is derived from the
contract's fields here, so adding a field to a contract changes all of them at
once. A column's kind comes from the JSON schema pydantic writes for the field:
``string`` (any string, an enum of strings, a UUID), ``timestamp`` (a string of
format ``date-time``), ``float`` (``number``), ``integer`` and ``boolean``.

:mod:`berg.contracts.shape_arrow` and :mod:`berg.contracts.shape_pandas` turn
columns into an arrow schema and a pandas frame; they live apart because
not every service installs pyarrow or pandas.

Example::

    columns = contract_columns(use_case.scored.contract, exclude={"schema_version"})
    v2_datatypes(columns)  # {"event_id": "BYTES", ..., "amount": "FP64", ...}
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

__all__ = ["Column", "ColumnKind", "contract_columns", "gx_type_names", "v2_datatypes"]

ColumnKind = Literal["string", "timestamp", "float", "integer", "boolean"]

# What Great Expectations' ``expect_column_values_to_be_of_type`` calls each kind.
_GX_TYPE_NAMES: Mapping[ColumnKind, str] = {
    "string": "str",
    "timestamp": "Timestamp",
    "float": "float64",
    "integer": "int64",
    "boolean": "bool",
}
# Open Inference Protocol (V2) tensor datatypes; a timestamp travels as ISO 8601 text.
_V2_DATATYPES: Mapping[ColumnKind, str] = {
    "string": "BYTES",
    "timestamp": "BYTES",
    "float": "FP64",
    "integer": "INT64",
    "boolean": "BOOL",
}


@dataclass(frozen=True)
class Column:
    """One field of a contract as a column: its name, its kind, and whether an event must carry it."""

    name: str
    kind: ColumnKind
    required: bool


def _kind(field: str, schema: Mapping[str, Any], contract: type[BaseModel]) -> ColumnKind:
    json_type = schema.get("type")
    if json_type == "string":
        return "timestamp" if schema.get("format") == "date-time" else "string"
    if json_type == "number":
        return "float"
    if json_type == "integer":
        return "integer"
    if json_type == "boolean":
        return "boolean"
    raise TypeError(
        f"{contract.__name__}.{field} has JSON schema {dict(schema)}, which is no column: "
        "a contract's fields are strings, timestamps, numbers, integers or booleans"
    )


def contract_columns(contract: type[BaseModel], *, exclude: Collection[str] = ()) -> tuple[Column, ...]:
    """The contract's fields as columns, in declaration order, without those in ``exclude``.

    Raises:
        TypeError: a field is not a flat scalar (a list, an object, a union of types).
        KeyError: ``exclude`` names a field the contract does not have.
    """
    schema = contract.model_json_schema(mode="validation")
    properties: Mapping[str, Mapping[str, Any]] = schema["properties"]
    unknown = set(exclude) - set(properties)
    if unknown:
        raise KeyError(f"{contract.__name__} has no field {sorted(unknown)}")
    required = set(schema.get("required", ()))
    return tuple(
        Column(name, _kind(name, field, contract), name in required)
        for name, field in properties.items()
        if name not in exclude
    )


def gx_type_names(columns: tuple[Column, ...]) -> dict[str, str]:
    """Column name to the type name Great Expectations checks, in column order."""
    return {column.name: _GX_TYPE_NAMES[column.kind] for column in columns}


def v2_datatypes(columns: tuple[Column, ...]) -> dict[str, str]:
    """Column name to its V2 tensor datatype, in column order."""
    return {column.name: _V2_DATATYPES[column.kind] for column in columns}
