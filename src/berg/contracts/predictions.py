"""The prediction log: one record per scored event.

Serving writes it to the ``predictions`` topic; monitoring joins it to labels on
the scored event's id to measure delayed-label quality.

- :class:`PredictionV1` carries one time, ``event_time``: when the prediction was
  served (wall clock). Label delays and label horizons run on the transaction's
  event time, which v1 does not carry, so a reader can only take the serving time
  for it: right in real time, wrong in any replay.
- :class:`PredictionV2` carries both clocks: ``transaction_event_time`` (the
  transaction's own event time, the clock labels run on) and ``served_at`` (wall
  clock, for latency); its event and entities are the fraud case's.
- :class:`PredictionV3` (what serving writes) is the same for any use case: the
  scored event's ``scored_event_id`` and ``scored_event_time`` (the clock labels run
  on), and ``entities``, each entity key of the use case's feature set with its value
  in the event.

Readers of the topic decode :class:`LoggedPrediction` (any version, told apart by
``schema_version``), so records written before an upgrade still count.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, RootModel, StringConstraints, Tag

from berg.contracts._types import CONTRACT_CONFIG, EventId, FiniteFloat, Identifier, UtcDatetime

__all__ = ["Decision", "LoggedPrediction", "PredictionV1", "PredictionV2", "PredictionV3"]

Decision = Literal["approve", "review", "decline"]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")]

EntityKey = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")]
EntityValue = Annotated[str, StringConstraints(min_length=1, max_length=128)]

MAX_FEATURES = 256
MAX_ENTITIES = 16


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


class PredictionV2(BaseModel):
    """What the model said about one transaction, with which inputs, on the transaction's clock and serving's."""

    model_config = CONTRACT_CONFIG

    schema_version: Literal[2] = 2
    event_id: EventId
    """This prediction's own id."""
    transaction_event_id: EventId
    transaction_event_time: UtcDatetime
    """The transaction's event time (``TransactionV1.event_time``): the clock label delays and horizons run on."""
    served_at: UtcDatetime
    """When serving answered (wall clock): for latency, never for label delays."""
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


class PredictionV3(BaseModel):
    """What the model said about one scored event of any use case, with which inputs, on the event's clock and
    serving's."""

    model_config = CONTRACT_CONFIG

    schema_version: Literal[3] = 3
    event_id: EventId
    """This prediction's own id."""
    scored_event_id: EventId
    """The scored event's ``event_id``: what a label names when it judges it."""
    scored_event_time: UtcDatetime
    """The scored event's ``event_time``: the clock label delays and horizons run on."""
    served_at: UtcDatetime
    """When serving answered (wall clock): for latency, never for label delays."""
    entities: Annotated[dict[EntityKey, EntityValue], Field(max_length=MAX_ENTITIES)]
    """Each entity key of the use case's feature set (``user_id``, ...) with its value in the scored event."""
    model_name: Identifier
    model_version: Identifier
    features: Annotated[dict[FeatureName, FiniteFloat], Field(max_length=MAX_FEATURES)]
    score: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    threshold: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    decision: Decision
    default_features_used: bool = False
    """True when some entity was unknown to the online store (or its row older than the view's TTL)."""


def _schema_version(value: Any) -> str:
    # A v1 record may leave schema_version out (it has a default); anything else names its version.
    version = value.get("schema_version", 1) if isinstance(value, dict) else getattr(value, "schema_version", 1)
    return str(version)


class LoggedPrediction(
    RootModel[
        Annotated[
            Annotated[PredictionV1, Tag("1")] | Annotated[PredictionV2, Tag("2")] | Annotated[PredictionV3, Tag("3")],
            Discriminator(_schema_version),
        ]
    ]
):
    """A record of the prediction log in any version, told apart by ``schema_version`` (absent: 1).

    Example:
        >>> LoggedPrediction.model_validate_json(record.value).root  # a PredictionV1, V2 or V3
    """
