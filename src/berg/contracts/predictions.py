"""The prediction log: one record per scored event.

Serving writes :class:`PredictionV3` to the ``predictions`` topic, the same for any use
case: the scored event's ``scored_event_id`` and ``scored_event_time`` (the clock labels
run on), and ``entities``, each entity key of the use case's feature set with its value in
the event. Monitoring joins it to labels on the scored event's id to measure
delayed-label quality.

A use case whose serving wrote older versions before it (the reference case's v1 and v2
named its own fields) declares them (``UseCase.legacy_predictions``): each is a contract
model of its own that says what it reads as today (:class:`LegacyPrediction`).
Readers decode the topic with a :class:`PredictionLogReader` built from those, so records
written before an upgrade still count, and the platform names no use case's fields.
"""

from __future__ import annotations

import functools
import operator
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, StringConstraints, Tag, TypeAdapter

from berg.contracts._types import CONTRACT_CONFIG, EventId, FiniteFloat, Identifier, UtcDatetime

__all__ = ["Decision", "LegacyPrediction", "PredictionLogReader", "PredictionLogReaderError", "PredictionV3"]

Decision = Literal["approve", "review", "decline"]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")]

EntityKey = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_]*$")]
EntityValue = Annotated[str, StringConstraints(min_length=1, max_length=128)]

MAX_FEATURES = 256
MAX_ENTITIES = 16


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


CURRENT_VERSION = 3


class LegacyPrediction(BaseModel, ABC):
    """The base of a record of an older version of a use case's prediction log: a contract model whose
    ``schema_version`` field defaults to its version, and which says what it reads as today."""

    @abstractmethod
    def upgraded(self) -> PredictionV3:
        """This record as today's version: the same prediction, its scored event's id and time, its entities."""


class PredictionLogReaderError(ValueError):
    """Legacy prediction versions that cannot be told apart from each other or from today's."""


def _schema_version(value: Any) -> str:
    # A v1 record may leave schema_version out (its model has a default); anything else names its version.
    version = value.get("schema_version", 1) if isinstance(value, dict) else getattr(value, "schema_version", 1)
    return str(version)


class PredictionLogReader:
    """Reads records of the prediction log in every version a use case's serving wrote, as :class:`PredictionV3`.

    Built once at start-up from the use case's legacy versions (none: only today's). A record of a version
    the use case never wrote is a contract violation, like any other.

    Example:
        >>> log = PredictionLogReader(use_case.legacy_predictions)
        >>> log.model_validate_json(record.value)  # a PredictionV3, whatever version the record was
    """

    __name__ = "PredictionLogReader"
    """What decoding errors name (:func:`berg.kafka.decoding.decode_contract`)."""

    def __init__(self, legacy: Sequence[type[LegacyPrediction]] = ()) -> None:
        versions: dict[str, type[Any]] = {str(CURRENT_VERSION): PredictionV3}
        for model in legacy:
            version = _declared_version(model)
            if version in versions:
                raise PredictionLogReaderError(
                    f"{model.__name__} and {versions[version].__name__} both declare version {version}"
                )
            versions[version] = model
        self._adapter: TypeAdapter[Any] = TypeAdapter(PredictionV3)
        if len(versions) > 1:
            # Told apart by schema_version; the union is built here, from what the use case declared.
            tagged: list[Any] = [Annotated[model, Tag(version)] for version, model in versions.items()]
            union: Any = functools.reduce(operator.or_, tagged)
            self._adapter = TypeAdapter(Annotated[union, Discriminator(_schema_version)])
        self.versions = tuple(sorted(int(version) for version in versions))
        """The versions this log reads."""

    def model_validate_json(self, data: str | bytes) -> PredictionV3:
        """Decode one record of any version this log reads, as today's version.

        Raises:
            pydantic.ValidationError: the record breaks its version's contract, or names a version not read.
        """
        record = self._adapter.validate_json(data)
        return record if isinstance(record, PredictionV3) else record.upgraded()


def _declared_version(model: type[LegacyPrediction]) -> str:
    field = model.model_fields.get("schema_version")
    default = getattr(field, "default", None)
    if not isinstance(default, int) or isinstance(default, bool) or not 0 < default < CURRENT_VERSION:
        raise PredictionLogReaderError(
            f"{model.__name__}: a legacy prediction declares its version as a schema_version field defaulting to "
            f"an int below {CURRENT_VERSION}"
        )
    return str(default)
