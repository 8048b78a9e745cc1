"""What was decided about each transaction, for the response and for the prediction log.

The request path keeps a :class:`ScoredTransaction` per transaction (references,
no copies, no validation); the prediction log's thread turns each into a
:class:`~berg.contracts.PredictionV2` with :func:`to_prediction`, off the request
path: the transaction's own event time (the clock monitoring measures label
delays and horizons on) and the time it was served. Pure.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from berg.contracts import PredictionV2, TransactionV1
from berg.contracts.predictions import Decision
from berg_serving.features import FeatureFrame

__all__ = ["ScoredTransaction", "Scores", "score_transactions", "to_prediction"]


@dataclass(frozen=True)
class Scores:
    """What the predictor said about a batch; one model version scored all of it."""

    model_version: str
    threshold: float
    scores: list[float]
    decisions: list[Decision]

    def __post_init__(self) -> None:
        if len(self.scores) != len(self.decisions):
            raise ValueError(f"{len(self.scores)} scores but {len(self.decisions)} decisions")


@dataclass(frozen=True)
class ScoredTransaction:
    """One transaction, its features and what the model said, as served."""

    prediction_id: UUID
    served_at: datetime
    model_name: str
    transaction: TransactionV1
    frame: FeatureFrame
    row: int
    model_version: str
    threshold: float
    score: float
    decision: Decision

    @property
    def default_features_used(self) -> bool:
        return bool(self.frame.default_features_used[self.row])


def score_transactions(
    transactions: Sequence[TransactionV1],
    frame: FeatureFrame,
    scores: Scores,
    *,
    model_name: str,
    served_at: datetime,
) -> list[ScoredTransaction]:
    """Pair each transaction with its score, under a fresh prediction id.

    Raises:
        ValueError: the batch, the frame and the scores disagree on the number of transactions.
    """
    if not len(transactions) == len(frame) == len(scores.scores):
        raise ValueError(f"{len(transactions)} transactions, {len(frame)} feature rows and {len(scores.scores)} scores")
    return [
        ScoredTransaction(
            prediction_id=uuid.uuid4(),
            served_at=served_at,
            model_name=model_name,
            transaction=transaction,
            frame=frame,
            row=index,
            model_version=scores.model_version,
            threshold=scores.threshold,
            score=scores.scores[index],
            decision=scores.decisions[index],
        )
        for index, transaction in enumerate(transactions)
    ]


def to_prediction(scored: ScoredTransaction) -> PredictionV2:
    """The prediction-log record of one scored transaction (missing features are left out: no NaN)."""
    transaction = scored.transaction
    return PredictionV2(
        event_id=scored.prediction_id,
        transaction_event_id=transaction.event_id,
        transaction_event_time=transaction.event_time,
        served_at=scored.served_at,
        user_id=transaction.user_id,
        merchant_id=transaction.merchant_id,
        model_name=scored.model_name,
        model_version=scored.model_version,
        features=scored.frame.row(scored.row),
        score=scored.score,
        threshold=scored.threshold,
        decision=scored.decision,
        default_features_used=scored.default_features_used,
    )
