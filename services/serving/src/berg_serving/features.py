"""The feature vector of a scored event at scoring time, as training saw it.

The model reads the use case's feature service plus its request features (fields of
the event read as they are; ``berg_pipelines``' dataset does the same): each stored
view's row from Feast's online store, keyed by the view's entity, and the on-demand
features computed by the same function training used (the use case's
:class:`~berg.features.feature_set.OnDemandView`).

Missing is NaN, as in training (``feature_matrix``: float32, NaN for missing), and
a stored row counts only within its view's TTL of the event, as in the point-in-time
join that built the training set: an unknown entity, or one whose row is older than
the TTL, gets NaN for that view's features (XGBoost learned where missing values go)
and ``default_features_used``. A row's TTL runs from its stamp (the view's Feast event
timestamp: a streaming row's as-of time, a snapshot's availability), as in the
training join. Pure: the online values come in as Feast's ``OnlineResponse.to_dict()``
shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from berg.features.feature_set import REQUEST_EVENT_UNIX, FeatureSet

__all__ = [
    "FeatureAssembler",
    "FeatureFrame",
    "MissingFeaturesError",
    "feature_matrix",
]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


class MissingFeaturesError(ValueError):
    """A model needs features the request did not bring."""


@dataclass(frozen=True)
class FeatureFrame:
    """Named feature columns for a batch of events (float64, NaN for missing)."""

    columns: Mapping[str, np.ndarray]
    known: Mapping[str, np.ndarray]
    """Per entity (its name), per row: the entity had a row in the online store within the view's TTL."""

    def __len__(self) -> int:
        # A feature set without stored views has no entities: the columns tell the length then.
        for column in (*self.known.values(), *self.columns.values()):
            return len(column)
        return 0

    @property
    def default_features_used(self) -> np.ndarray:
        """Per row: some view's features were defaults (NaN) because its entity was unknown or stale."""
        known = np.ones(len(self), dtype=bool)
        for entity_known in self.known.values():
            known &= entity_known
        result: np.ndarray = ~known
        return result

    def matrix(self, order: Sequence[str]) -> np.ndarray:
        """The model's input in its column order (see :func:`feature_matrix`)."""
        return feature_matrix(self.columns, order)

    def row(self, index: int) -> dict[str, float]:
        """One event's features without the missing ones (the prediction log has no NaN)."""
        values = {name: float(column[index]) for name, column in self.columns.items()}
        return {name: value for name, value in values.items() if math.isfinite(value)}


def feature_matrix(columns: Mapping[str, np.ndarray], order: Sequence[str]) -> np.ndarray:
    """A model's input from named columns, in its column order: float32, NaN for missing, clipped to float32.

    Raises:
        MissingFeaturesError: a feature of ``order`` is not among the columns.
    """
    missing = [name for name in order if name not in columns]
    if missing:
        raise MissingFeaturesError(f"features {missing} are missing; given: {sorted(columns)}")
    rows = len(next(iter(columns.values()))) if columns else 0
    matrix = np.empty((rows, len(order)), dtype=np.float32)
    for index, name in enumerate(order):
        # Beyond float32's range a value would become infinite, which XGBoost refuses: it is clipped
        # to the largest float32 (still past every split point). NaN passes through.
        matrix[:, index] = np.clip(columns[name], -_FLOAT32_MAX, _FLOAT32_MAX)
    return matrix


def _floats(values: Sequence[object] | None, count: int) -> np.ndarray:
    if values is None:
        return np.full(count, np.nan)
    return np.array([np.nan if value is None else value for value in values], dtype=np.float64)


def _usable(stamp: np.ndarray, event_unix: np.ndarray, ttl_s: float) -> np.ndarray:
    # A row counts when it exists and its stamp (the row's Feast event time) is no older than the
    # view's TTL at the event's time, as in the point-in-time join of the training set (NaN
    # compares False: no row, not usable).
    usable: np.ndarray = ~np.isnan(stamp) & (event_unix - stamp <= ttl_s)
    return usable


@dataclass(frozen=True)
class _StoredPlan:
    entity: str
    stamp: str
    ttl_s: float
    stored: tuple[str, ...]


class FeatureAssembler:
    """A use case's feature vectors from its online rows: what to read, for which keys, and how to assemble it.

    Built once per server from the use case's :class:`~berg.features.feature_set.FeatureSet`.
    """

    def __init__(self, features: FeatureSet) -> None:
        self._features = features
        self._keys = {entity.name: entity.key for entity in features.entities}
        self.entity_keys: tuple[str, ...] = tuple(dict.fromkeys(self._keys.values()))
        """The fields of the event that key the feature set's entities (``user_id``, ...), once each."""
        self._views = tuple(
            _StoredPlan(view.entity.name, view.stamp, view.ttl.total_seconds(), tuple(s.name for s in view.features))
            for view in features.views
        )
        self.online_refs: tuple[str, ...] = tuple(
            f"{view.name}:{spec.name}" for view in features.views for spec in view.features
        )
        """What one online lookup reads: every stored feature of every view, the as-of and stamp columns included."""
        on_demand = features.on_demand
        self._request_fields = tuple(
            dict.fromkeys((*features.request_features, *(on_demand.request_fields if on_demand else ())))
        )
        self.servable: tuple[str, ...] = features.model_features
        """Every feature the transformer can hand to a model: the feature service's and the request features."""

    def entity_rows(self, events: Sequence[BaseModel]) -> list[dict[str, str]]:
        """Feast's ``entity_rows`` for a batch: each entity's key of each event."""
        keys = self.entity_keys
        return [{key: getattr(event, key) for key in keys} for event in events]

    def warm_up_rows(self) -> list[dict[str, str]]:
        """An entity row no store knows, to open the stores with before serving."""
        return [dict.fromkeys(self.entity_keys, "warm-up")]

    def assemble(self, events: Sequence[BaseModel], online: Mapping[str, Sequence[object]]) -> FeatureFrame:
        """The feature columns of ``events`` from their online rows (Feast's ``to_dict()``, same order).

        Raises:
            ValueError: ``online`` does not hold one value per event for each feature.
        """
        count = len(events)
        for name, values in online.items():
            if len(values) != count:
                raise ValueError(f"online feature {name!r} has {len(values)} values for {count} events")
        event_unix = np.array([event.event_time.timestamp() for event in events], dtype=np.float64)  # type: ignore[attr-defined]
        columns: dict[str, np.ndarray] = {}
        known: dict[str, np.ndarray] = {}
        for view in self._views:
            usable = _usable(_floats(online.get(view.stamp), count), event_unix, view.ttl_s)
            known[view.entity] = known[view.entity] & usable if view.entity in known else usable
            for name in view.stored:
                columns[name] = np.where(usable, _floats(online.get(name), count), np.nan)
        request = {
            field: np.array([getattr(event, field) for event in events], dtype=np.float64)
            for field in self._request_fields
        }
        on_demand = self._features.on_demand
        if on_demand is not None:
            inputs = {**request, REQUEST_EVENT_UNIX: event_unix, **columns}
            for name, values in on_demand.compute(
                {name: inputs[name].tolist() for name in on_demand.input_columns}
            ).items():
                columns[name] = np.array(values, dtype=np.float64)
        for field in self._features.request_features:
            columns[field] = request[field]
        return FeatureFrame(columns={name: columns[name] for name in self.servable}, known=known)
