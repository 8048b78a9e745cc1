"""The shadow prediction record of one scored event: the champion's answer beside the shadow's. Pure."""

from __future__ import annotations

import uuid
from datetime import datetime

from berg.contracts import ShadowPredictionV1
from berg_serving.predictions import ScoredEvent, Scores

__all__ = ["shadow_record"]


def shadow_record(scored: ScoredEvent, shadow: Scores, row: int, *, scored_at: datetime) -> ShadowPredictionV1:
    """What the shadow (row ``row`` of ``shadow``) said about the event the champion answered in ``scored``.

    Raises:
        pydantic.ValidationError: the record does not fit :class:`~berg.contracts.ShadowPredictionV1`
            (a score outside [0, 1], an entity value longer than it allows).
    """
    return ShadowPredictionV1(
        event_id=uuid.uuid4(),
        prediction_event_id=scored.prediction_id,
        scored_event_id=scored.event_id,
        scored_event_time=scored.event_time,
        served_at=scored.served_at,
        shadow_scored_at=scored_at,
        entities={key: str(getattr(scored.event, key)) for key in scored.entity_keys},
        model_name=scored.model_name,
        champion_version=scored.model_version,
        champion_score=scored.score,
        champion_threshold=scored.threshold,
        champion_decision=scored.decision,
        shadow_version=shadow.model_version,
        score=shadow.scores[row],
        threshold=shadow.threshold,
        decision=shadow.decisions[row],
    )
