"""What was decided about each scored event, for the response and for the prediction log.

The request path keeps a :class:`ScoredEvent` per event of the use case's scored
contract (references, no copies, no validation); the prediction log's thread turns
each into a :class:`~berg.contracts.PredictionV3` with :func:`to_prediction`, off the
request path: the event's own id and event time (every Berg contract's ``event_id``
and ``event_time``; the time is the clock monitoring measures label delays and
horizons on), the value of each entity key of the use case's feature set, and the
time it was served. Pure.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from berg.contracts import PredictionV3
from berg.contracts.predictions import Decision
from berg_serving.features import FeatureFrame

__all__ = ["ScoredEvent", "Scores", "score_events", "to_prediction"]

_EVENT_ID, _EVENT_TIME = "event_id", "event_time"
"""Every contract's id and event time fields (:class:`berg.usecase.Stream` checks that it has them)."""


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
class ScoredEvent:
    """One scored event, its features and what the model said, as served."""

    prediction_id: UUID
    served_at: datetime
    model_name: str
    event: BaseModel
    """The event as the request gave it, of the use case's scored contract."""
    entity_keys: tuple[str, ...]
    """The event's fields that key the feature set's entities (:attr:`FeatureAssembler.entity_keys`)."""
    frame: FeatureFrame
    row: int
    model_version: str
    threshold: float
    score: float
    decision: Decision

    @property
    def event_id(self) -> UUID:
        """The scored event's ``event_id``."""
        event_id: UUID = getattr(self.event, _EVENT_ID)
        return event_id

    @property
    def event_time(self) -> datetime:
        """The scored event's ``event_time``: the clock its label runs on."""
        event_time: datetime = getattr(self.event, _EVENT_TIME)
        return event_time

    @property
    def default_features_used(self) -> bool:
        return bool(self.frame.default_features_used[self.row])


def score_events(
    events: Sequence[BaseModel],
    frame: FeatureFrame,
    scores: Scores,
    *,
    model_name: str,
    served_at: datetime,
    entity_keys: Sequence[str],
) -> list[ScoredEvent]:
    """Pair each event with its score, under a fresh prediction id.

    Args:
        entity_keys: the fields of the events that key the feature set's entities (logged with each).

    Raises:
        ValueError: the batch, the frame and the scores disagree on the number of events.
    """
    if not len(events) == len(frame) == len(scores.scores):
        raise ValueError(f"{len(events)} events, {len(frame)} feature rows and {len(scores.scores)} scores")
    keys = tuple(entity_keys)
    return [
        ScoredEvent(
            prediction_id=uuid.uuid4(),
            served_at=served_at,
            model_name=model_name,
            event=event,
            entity_keys=keys,
            frame=frame,
            row=index,
            model_version=scores.model_version,
            threshold=scores.threshold,
            score=scores.scores[index],
            decision=scores.decisions[index],
        )
        for index, event in enumerate(events)
    ]


def to_prediction(scored: ScoredEvent) -> PredictionV3:
    """The prediction-log record of one scored event (missing features are left out: no NaN).

    Raises:
        pydantic.ValidationError: the record does not fit :class:`~berg.contracts.PredictionV3` (an entity
            value longer than it allows, say).
    """
    return PredictionV3(
        event_id=scored.prediction_id,
        scored_event_id=scored.event_id,
        scored_event_time=scored.event_time,
        served_at=scored.served_at,
        entities={key: str(getattr(scored.event, key)) for key in scored.entity_keys},
        model_name=scored.model_name,
        model_version=scored.model_version,
        features=scored.frame.row(scored.row),
        score=scored.score,
        threshold=scored.threshold,
        decision=scored.decision,
        default_features_used=scored.default_features_used,
    )
