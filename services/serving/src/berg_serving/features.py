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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from pydantic import BaseModel

from berg.features.feature_set import REQUEST_EVENT_UNIX, FeatureSet

__all__ = [
    "FeatureAssembler",
    "FeatureFrame",
    "MatrixColumns",
    "MissingFeaturesError",
    "ViewRead",
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
        for known in self.known.values():
            return len(known)
        if isinstance(self.columns, MatrixColumns):
            return int(self.columns.matrix.shape[0])
        for column in self.columns.values():
            return len(column)
        return 0

    @cached_property
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


class MatrixColumns(Mapping[str, np.ndarray]):
    """Named columns held as one float64 matrix (rows are events): what the assembler makes in one numpy call.

    Reading a column is a view of the matrix; :func:`feature_matrix` takes the model's columns in one step.
    """

    def __init__(self, names: Sequence[str], matrix: np.ndarray) -> None:
        self._index = {name: position for position, name in enumerate(names)}
        self.matrix = matrix
        self._orders: dict[tuple[str, ...], np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        column: np.ndarray = self.matrix[:, self._index[name]]
        return column

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def positions(self, order: Sequence[str]) -> np.ndarray:
        """The matrix's column of each name of ``order``."""
        return np.fromiter((self._index[name] for name in order), dtype=np.intp, count=len(order))


def feature_matrix(columns: Mapping[str, np.ndarray], order: Sequence[str]) -> np.ndarray:
    """A model's input from named columns, in its column order: float32, NaN for missing, clipped to float32.

    Raises:
        MissingFeaturesError: a feature of ``order`` is not among the columns.
    """
    missing = [name for name in order if name not in columns]
    if missing:
        raise MissingFeaturesError(f"features {missing} are missing; given: {sorted(columns)}")
    if isinstance(columns, MatrixColumns):
        # Beyond float32's range a value would become infinite, which XGBoost refuses: it is clipped
        # to the largest float32 (still past every split point). NaN passes through.
        taken = np.clip(columns.matrix[:, columns.positions(order)], -_FLOAT32_MAX, _FLOAT32_MAX)
        result: np.ndarray = taken.astype(np.float32)
        return result
    rows = len(next(iter(columns.values()))) if columns else 0
    matrix = np.empty((rows, len(order)), dtype=np.float32)
    for index, name in enumerate(order):
        # Beyond float32's range a value would become infinite, which XGBoost refuses: it is clipped
        # to the largest float32 (still past every split point). NaN passes through.
        matrix[:, index] = np.clip(columns[name], -_FLOAT32_MAX, _FLOAT32_MAX)
    return matrix


def _number(value: object) -> float:
    return math.nan if value is None else float(value)  # type: ignore[arg-type]  # the store's numbers


def _usable(stamps: Sequence[object] | None, event_unix: Sequence[float], ttl_s: float) -> list[bool]:
    # A row counts when it exists and its stamp (the row's Feast event time) is no older than the
    # view's TTL at the event's time, as in the point-in-time join of the training set (None or NaN:
    # no row, not usable; NaN compares False).
    if stamps is None:
        return [False] * len(event_unix)
    return [stamp is not None and at - _number(stamp) <= ttl_s for stamp, at in zip(stamps, event_unix, strict=True)]


@dataclass(frozen=True)
class ViewRead:
    """What one online lookup reads of a stored view: the view, its entity's join key, its features."""

    view: str
    key: str
    features: tuple[str, ...]


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
        self.online_reads: tuple[ViewRead, ...] = tuple(
            ViewRead(view.name, view.entity.key, tuple(spec.name for spec in view.features)) for view in features.views
        )
        """:attr:`online_refs` by view, with the join key of each view's entity."""
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
        # Plain Python per value, one numpy call at the end: a request holds one event or a few, where
        # numpy's per-call cost is most of the work.
        event_unix = [event.event_time.timestamp() for event in events]  # type: ignore[attr-defined]
        columns: dict[str, list[float]] = {}
        known: dict[str, list[bool]] = {}
        for view in self._views:
            usable = _usable(online.get(view.stamp), event_unix, view.ttl_s)
            if view.entity in known:
                usable = [both and ok for both, ok in zip(known[view.entity], usable, strict=True)]
            known[view.entity] = usable
            for name in view.stored:
                stored = online.get(name)
                columns[name] = (
                    [_number(value) if ok else math.nan for value, ok in zip(stored, usable, strict=True)]
                    if stored is not None
                    else [math.nan] * count
                )
        request = {field: [float(getattr(event, field)) for event in events] for field in self._request_fields}
        on_demand = self._features.on_demand
        if on_demand is not None:
            inputs = {**request, REQUEST_EVENT_UNIX: event_unix, **columns}
            columns.update(on_demand.compute({name: inputs[name] for name in on_demand.input_columns}))
        for field in self._features.request_features:
            columns[field] = request[field]
        matrix = np.array([columns[name] for name in self.servable], dtype=np.float64).reshape(len(self.servable), -1)
        return FeatureFrame(
            columns=MatrixColumns(self.servable, matrix.T),
            known={entity: np.array(usable, dtype=bool) for entity, usable in known.items()},
        )
