"""Versioned event contracts. A contract change is a new version (``PredictionV4``), never an edit.

A use case's own contracts (the events it scores, their labels) live in its package and reach the
platform through its descriptor (``UseCase.scored.contract``, ``UseCase.labels.contract``).
"""

from berg.contracts.dead_letter import DeadLetterV1
from berg.contracts.predictions import LegacyPrediction, PredictionLogReader, PredictionV3
from berg.contracts.shadow import ShadowPredictionV1

__all__ = [
    "DeadLetterV1",
    "LegacyPrediction",
    "PredictionLogReader",
    "PredictionV3",
    "ShadowPredictionV1",
]
