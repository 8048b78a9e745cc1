"""The fraud case's Kafka topics: each stream's raw, ingested and valid topic (``fraud().topics``)."""

from __future__ import annotations

__all__ = [
    "LABELS_INGESTED",
    "LABELS_RAW",
    "LABELS_VALID",
    "TRANSACTIONS_INGESTED",
    "TRANSACTIONS_RAW",
    "TRANSACTIONS_VALID",
]

TRANSACTIONS_RAW = "transactions.raw"
LABELS_RAW = "labels.raw"
TRANSACTIONS_INGESTED = "transactions.ingested"
LABELS_INGESTED = "labels.ingested"
TRANSACTIONS_VALID = "transactions.valid"
LABELS_VALID = "labels.valid"
