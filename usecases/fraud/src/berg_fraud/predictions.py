"""The prediction log's versions fraud serving wrote before the platform's generic one.

Before the use-case seam, serving wrote fraud's own fields to the ``predictions``
topic; records in them may still be there after an upgrade, so the use case
declares them (``UseCase.legacy_predictions``) and monitoring reads them as
today's :class:`~berg.contracts.PredictionV3` (:class:`~berg.contracts.PredictionLogReader`):

- :class:`PredictionV1` carries one time, ``event_time``: when the prediction was
  served (wall clock). Label delays and horizons run on the transaction's event
  time, which v1 does not carry, so it reads as scored at its serving time: right in
  real time, wrong in any replay.
- :class:`PredictionV2` carries both clocks: ``transaction_event_time`` (the
  transaction's own event time, the clock labels run on) and ``served_at``.

Both name the transaction by ``transaction_event_id`` and carry its ``user_id`` and
``merchant_id``: the entity keys of fraud's feature set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from berg.contracts._types import CONTRACT_CONFIG, EventId, FiniteFloat, Identifier, UtcDatetime
from berg.contracts.predictions import MAX_FEATURES, Decision, FeatureName, LegacyPrediction, PredictionV3

__all__ = ["PredictionV1", "PredictionV2"]

Score = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _FraudPrediction(LegacyPrediction):
    """What both legacy versions carry: the prediction, its transaction's id and entities, its inputs."""

    model_config = CONTRACT_CONFIG

    event_id: EventId
    """This prediction's own id."""
    transaction_event_id: EventId
    user_id: Identifier
    merchant_id: Identifier
    model_name: Identifier
    model_version: Identifier
    features: Annotated[dict[FeatureName, FiniteFloat], Field(max_length=MAX_FEATURES)]
    score: Score
    threshold: Score
    decision: Decision
    default_features_used: bool = False
    """True when the user or merchant was unknown to the online store."""

    def _as_today(self, scored_event_time: datetime, served_at: datetime) -> PredictionV3:
        return PredictionV3(
            event_id=self.event_id,
            scored_event_id=self.transaction_event_id,
            scored_event_time=scored_event_time,
            served_at=served_at,
            entities={"user_id": self.user_id, "merchant_id": self.merchant_id},
            model_name=self.model_name,
            model_version=self.model_version,
            features=self.features,
            score=self.score,
            threshold=self.threshold,
            decision=self.decision,
            default_features_used=self.default_features_used,
        )


class PredictionV1(_FraudPrediction):
    """What the model said about one transaction, and with which inputs."""

    schema_version: Literal[1] = 1
    event_time: UtcDatetime
    """When the prediction was served."""

    def upgraded(self) -> PredictionV3:
        """As today's version, scored at its serving time (the only time it has)."""
        return self._as_today(self.event_time, self.event_time)


class PredictionV2(_FraudPrediction):
    """What the model said about one transaction, with which inputs, on the transaction's clock and serving's."""

    schema_version: Literal[2] = 2
    transaction_event_time: UtcDatetime
    """The transaction's event time (``TransactionV1.event_time``): the clock label delays and horizons run on."""
    served_at: UtcDatetime
    """When serving answered (wall clock): for latency, never for label delays."""

    def upgraded(self) -> PredictionV3:
        """As today's version: the same prediction on the transaction's clock."""
        return self._as_today(self.transaction_event_time, self.served_at)
