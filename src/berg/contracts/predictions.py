"""The prediction log, contract v1: one record per scored transaction.

Serving writes it to the ``predictions`` topic; monitoring joins it to labels on
``transaction_event_id`` to measure delayed-label quality.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from berg.contracts._types import CONTRACT_CONFIG, EventId, FiniteFloat, Identifier, UtcDatetime

__all__ = ["Decision", "PredictionV1"]

Decision = Literal["approve", "review", "decline"]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")]

MAX_FEATURES = 256


class PredictionV1(BaseModel):
    """What the model said about one transaction, and with which inputs."""

    model_config = CONTRACT_CONFIG

    schema_version: Literal[1] = 1
    event_id: EventId
    """This prediction's own id."""
    event_time: UtcDatetime
    """When the prediction was served."""
    transaction_event_id: EventId
    user_id: Identifier
    merchant_id: Identifier
    model_name: Identifier
    model_version: Identifier
    features: Annotated[dict[FeatureName, FiniteFloat], Field(max_length=MAX_FEATURES)]
    score: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    threshold: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    decision: Decision
    default_features_used: bool = False
    """True when the user or merchant was unknown to the online store."""
