"""One definition of a record's shape: every table-like form is derived from the pydantic contract."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

import pandas as pd
import pyarrow as pa
import pytest
from pydantic import BaseModel

from berg.contracts._types import CONTRACT_CONFIG, EventId, JsonBool, JsonNumber, SchemaVersion1, UtcDatetime
from berg.contracts.shape import Column, contract_columns, gx_type_names, v2_datatypes
from berg.contracts.shape_arrow import arrow_fields
from berg.contracts.shape_pandas import STRING_DTYPE, events_frame

pytestmark = pytest.mark.unit


class ReadingV1(BaseModel):
    """A contract of another domain, with a field of every kind."""

    model_config = CONTRACT_CONFIG

    schema_version: SchemaVersion1 = 1
    event_id: EventId
    event_time: UtcDatetime
    sensor: str
    unit: Literal["celsius", "kelvin"] = "celsius"
    value: JsonNumber
    samples: int
    saturated: JsonBool


class Nested(BaseModel):
    readings: list[ReadingV1]


def reading(**overrides: object) -> ReadingV1:
    fields: dict[str, object] = {
        "event_id": uuid.uuid4(),
        "event_time": datetime(2026, 12, 3, 12, tzinfo=timezone(timedelta(hours=2))),
        "sensor": "s-1",
        "value": 21.5,
        "samples": 3,
        "saturated": False,
    }
    return ReadingV1.model_validate({**fields, **overrides})


def test_columns_follow_the_contract_in_order_with_their_kinds_and_whether_required() -> None:
    assert contract_columns(ReadingV1, exclude={"schema_version"}) == (
        Column("event_id", "string", True),
        Column("event_time", "timestamp", True),
        Column("sensor", "string", True),
        Column("unit", "string", False),
        Column("value", "float", True),
        Column("samples", "integer", True),
        Column("saturated", "boolean", True),
    )
    assert contract_columns(ReadingV1)[0] == Column("schema_version", "integer", False)


def test_every_derived_form_has_the_contracts_columns_and_types() -> None:
    columns = contract_columns(ReadingV1, exclude={"schema_version"})
    assert pa.schema(arrow_fields(columns, nullable=False)) == pa.schema(
        [
            pa.field("event_id", pa.string(), nullable=False),
            pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("sensor", pa.string(), nullable=False),
            pa.field("unit", pa.string(), nullable=False),
            pa.field("value", pa.float64(), nullable=False),
            pa.field("samples", pa.int64(), nullable=False),
            pa.field("saturated", pa.bool_(), nullable=False),
        ]
    )
    assert gx_type_names(columns) == {
        "event_id": "str",
        "event_time": "Timestamp",
        "sensor": "str",
        "unit": "str",
        "value": "float64",
        "samples": "int64",
        "saturated": "bool",
    }
    assert v2_datatypes(columns) == {
        "event_id": "BYTES",
        "event_time": "BYTES",
        "sensor": "BYTES",
        "unit": "BYTES",
        "value": "FP64",
        "samples": "INT64",
        "saturated": "BOOL",
    }


def test_a_frame_has_one_typed_row_per_event_in_order() -> None:
    events = [reading(), reading(value=-3.0, unit="kelvin", saturated=True)]
    frame = events_frame(contract_columns(ReadingV1, exclude={"schema_version"}), events)
    assert list(frame.index) == [0, 1]
    assert frame["event_id"].tolist() == [str(event.event_id) for event in events]
    assert frame["event_id"].dtype == STRING_DTYPE
    assert frame["unit"].tolist() == ["celsius", "kelvin"]
    assert str(frame["event_time"].dtype) == "datetime64[ns, UTC]"
    assert frame["event_time"][0] == pd.Timestamp(datetime(2026, 12, 3, 10, tzinfo=UTC))
    assert frame["value"].dtype == "float64"
    assert frame["samples"].dtype == "int64"
    assert frame["saturated"].tolist() == [False, True]
    empty = events_frame(contract_columns(ReadingV1), [])
    assert len(empty) == 0
    assert str(empty["event_time"].dtype) == "datetime64[ns, UTC]"


def test_a_field_that_is_no_column_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"Nested\.readings"):
        contract_columns(Nested)
    with pytest.raises(KeyError, match="no field"):
        contract_columns(ReadingV1, exclude={"temperature"})
