"""Versioned event contracts. A contract change is a new version (``TransactionV2``), never an edit."""

from berg.contracts.dead_letter import DeadLetterV1
from berg.contracts.events import LabelV1, TransactionV1
from berg.contracts.predictions import PredictionV1

__all__ = ["DeadLetterV1", "LabelV1", "PredictionV1", "TransactionV1"]
