"""The shadow prediction log: one record per request a shadow challenger also scored.

A challenger in its ``shadow`` stage scores a share of live requests beside the
champion, after the champion answered. Serving writes each such score as a
:class:`ShadowPredictionV1` to its own topic (``predictions.shadow``), never to the
champion's ``predictions``: no reader of the champion's decisions (monitoring's
drift and quality, the business metrics) can take a shadow score for one. Each record
carries the champion's score and decision for the same request, so monitoring
compares the two on the same requests without a join, and joins labels to it on
``scored_event_id`` as it does for the champion's log.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from berg.contracts._types import CONTRACT_CONFIG, EventId, Identifier, UtcDatetime
from berg.contracts.predictions import MAX_ENTITIES, Decision, EntityKey, EntityValue

__all__ = ["ShadowPredictionV1"]

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class ShadowPredictionV1(BaseModel):
    """What a shadow challenger said about one request the champion answered."""

    model_config = CONTRACT_CONFIG

    schema_version: Literal[1] = 1
    event_id: EventId
    """This record's own id."""
    prediction_event_id: EventId
    """The ``event_id`` of the champion's prediction of the same request (in ``predictions``)."""
    scored_event_id: EventId
    scored_event_time: UtcDatetime
    served_at: UtcDatetime
    """When the champion answered."""
    shadow_scored_at: UtcDatetime
    """When the shadow scored it (after the answer; the difference is the shadow's queueing and scoring)."""
    entities: Annotated[dict[EntityKey, EntityValue], Field(max_length=MAX_ENTITIES)]
    model_name: Identifier
    champion_version: Identifier
    champion_score: Probability
    champion_threshold: Probability
    champion_decision: Decision
    shadow_version: Identifier
    score: Probability
    """The shadow's score, from the same feature vector as the champion's."""
    threshold: Probability
    """The shadow's own operating threshold."""
    decision: Decision
    """The decision the shadow would have made (never made: the champion's stands)."""
