"""Versioned event contracts. A contract change is a new version (``TransactionV2``), never an edit."""

from berg.contracts.dead_letter import DeadLetterV1
from berg.contracts.events import LabelV1, TransactionV1
from berg.contracts.predictions import LoggedPrediction, PredictionV1, PredictionV2, PredictionV3

__all__ = [
    "DeadLetterV1",
    "LabelV1",
    "LoggedPrediction",
    "PredictionV1",
    "PredictionV2",
    "PredictionV3",
    "TransactionV1",
]
