"""How decoded events become landing-zone rows: the parquet schemas and the conversion."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa

from berg.contracts import LabelV1, TransactionV1
from berg.kafka.records import RawRecord

__all__ = ["LABEL_SCHEMA", "TRANSACTION_SCHEMA", "to_row"]

_TIMESTAMP = pa.timestamp("us", tz="UTC")

_LINEAGE = [
    pa.field("ingested_at", _TIMESTAMP, nullable=False),
    pa.field("kafka_topic", pa.string(), nullable=False),
    pa.field("kafka_partition", pa.int32(), nullable=False),
    pa.field("kafka_offset", pa.int64(), nullable=False),
]

TRANSACTION_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_time", _TIMESTAMP, nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("merchant_id", pa.string(), nullable=False),
        pa.field("amount", pa.float64(), nullable=False),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("merchant_category", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("country", pa.string(), nullable=False),
        *_LINEAGE,
    ]
)

LABEL_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_time", _TIMESTAMP, nullable=False),
        pa.field("transaction_event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("is_fraud", pa.bool_(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        *_LINEAGE,
    ]
)


def to_row(event: TransactionV1 | LabelV1, record: RawRecord, ingested_at: datetime) -> dict[str, Any]:
    """One landing row: the event's fields (ids as strings) plus when and where it was ingested."""
    row = event.model_dump(mode="python")
    for key, value in row.items():
        if key == "event_id" or key.endswith("_event_id"):
            row[key] = str(value)
    row.update(
        ingested_at=ingested_at,
        kafka_topic=record.topic,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
    )
    return row
