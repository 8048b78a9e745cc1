"""A use case's features as data: the Feast views, the on-demand view and the feature service.

A use case declares one :class:`FeatureSet`; the platform builds everything else from it:
the Feast objects (:mod:`berg.features.definitions`), the offline sources' parquet schemas,
the features service's streaming aggregator and snapshot job, serving's online lookup and
feature assembly, and the training set's model columns. So a feature cannot mean one thing
in one place and another elsewhere. Pure Python: no Feast import.

Three kinds of view:

- a :class:`StreamingView` is one declared :class:`~berg.features.aggregation.AggregationView`
  over the scored stream, which the features service computes per event and pushes;
- a :class:`SnapshotView` is a batch view over the label store: per key, at fixed event-time
  boundaries, aggregates of the scored events in a window and of the labels known at the
  boundary (a label counts from when it became known);
- an :class:`OnDemandView` is a function of the request and stored features, the same code in
  training (Feast's historical retrieval) and serving.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any, Literal

from berg.features.aggregation import AggregationView

__all__ = [
    "ARRIVAL_TIME",
    "CREATED_TIMESTAMP",
    "EVENT_TIMESTAMP",
    "REQUEST_EVENT_UNIX",
    "DeclaredWindow",
    "Entity",
    "FeatureSet",
    "FeatureSetError",
    "FeatureSpec",
    "OnDemandMode",
    "OnDemandView",
    "SnapshotAggregate",
    "SnapshotView",
    "StoredView",
    "StreamingView",
    "TrustedView",
    "ViewColumns",
    "window_problems",
]

Kind = Literal["int", "float"]

EVENT_TIMESTAMP = "event_timestamp"
"""Event time of the state a feature row describes (Feast's ``timestamp_field``)."""
CREATED_TIMESTAMP = "created_timestamp"
"""When the row was written; a corrected row (late event) wins over the one it replaces."""
REQUEST_EVENT_UNIX = "event_unix"
"""The scored event's event time in Unix seconds: a request field every on-demand view may read."""


ARRIVAL_TIME = "arrival_time"
"""The label store's column saying when the platform learnt each label (:mod:`berg.features.label_store`): the
event time its writer's scored stream had reached before the batch that brought the label, never before the
label's own event time. A view reads labels by it, never by their own event time (which its issuer may backdate,
or a late delivery makes a claim about the past) nor by the time of the event they judge. Rows written before
the column existed read it as their event time."""
StreamName = Literal["scored", "labels"]
"""The two streams a view may read (:class:`DeclaredWindow`)."""
SCORED: StreamName = "scored"
LABELS: StreamName = "labels"


class FeatureSetError(ValueError):
    """A feature set that contradicts itself (a name used twice, an input that no view stores)."""


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column: its name, its value kind and a sentence for the registry."""

    name: str
    kind: Kind
    description: str
    retrain_on_drift: bool = True
    """Whether its drift may start a retraining run. False for a feature whose distribution moves on a
    timescale longer than a training window even in a settled world, or swings from one day to the next
    past the alert threshold in a settled world: retraining cannot cure either. Monitoring still measures
    and exports it (and alerts at severity info)."""


@dataclass(frozen=True)
class DeclaredWindow:
    """What a view's value at prediction time ``T`` reads of one stream: its records whose ``time_column`` lies in
    ``(T - reaches_back, T + reaches_to)``. The window lint (:func:`window_problems`) refuses any window that
    reaches past ``T`` (``reaches_to > 0``) and any read of labels by another column than :data:`ARRIVAL_TIME`.

    The declared kinds derive theirs from what they declare (:attr:`StreamingView.windows`,
    :attr:`SnapshotView.windows`), which can only look back; a :class:`TrustedView`, which the platform cannot
    re-run, states its own, and the lint is all the proof it gets."""

    stream: StreamName
    time_column: str
    reaches_back: timedelta
    reaches_to: timedelta = timedelta(0)


@dataclass(frozen=True)
class Entity:
    """What a view is keyed by: Feast's entity, whose join key is a field of the scored events."""

    name: str
    key: str
    description: str


@dataclass(frozen=True)
class StreamingView:
    """A view the features service computes from the scored stream and pushes on every event."""

    aggregation: AggregationView
    entity: Entity
    ttl: timedelta
    """Past this, every window of a row is empty: no row reads as "no recent history"."""
    description: str

    kind: Literal["streaming"] = "streaming"

    def __post_init__(self) -> None:
        if self.entity.key != self.aggregation.key:
            raise FeatureSetError(
                f"streaming view {self.name!r}: its entity's key is {self.entity.key!r}, "
                f"its aggregation's {self.aggregation.key!r}"
            )

    @property
    def name(self) -> str:
        return self.aggregation.name

    @property
    def as_of(self) -> str:
        """The column holding the event time (Unix seconds) of the latest event a row includes."""
        return self.aggregation.as_of

    @property
    def stamp(self) -> str:
        """The column whose time is the row's Feast event timestamp: the view's TTL runs from it."""
        return self.aggregation.as_of

    @cached_property
    def features(self) -> tuple[FeatureSpec, ...]:
        """Every stored column: the aggregates, then the as-of time."""
        return (
            *(FeatureSpec(a.name, a.kind, a.description) for a in self.aggregation.aggregates),
            FeatureSpec(self.as_of, "float", "Event time of the latest event included (Unix seconds)."),
        )

    @property
    def model_features(self) -> tuple[str, ...]:
        """The stored columns a model may read (not the as-of time)."""
        return tuple(a.name for a in self.aggregation.aggregates)

    @property
    def windows(self) -> tuple[DeclaredWindow, ...]:
        """The row at ``T`` is the one at the entity's last event before ``T`` (within the TTL), over its windows."""
        reach = timedelta(microseconds=self.aggregation.longest_window_us) + self.ttl
        return (DeclaredWindow(SCORED, "event_time", reach),)

    @property
    def source_name(self) -> str:
        return f"{self.name}_source"

    @property
    def push_source(self) -> str:
        """The Feast push source the features service writes the rows to."""
        return f"{self.name}_push"

    @property
    def source_description(self) -> str:
        return "Rows pushed by the features service, one per event (and corrections)."


SnapshotFunction = Literal["count", "mean", "positive_share", "labels_known"]


@dataclass(frozen=True)
class SnapshotAggregate:
    """One column of a snapshot view, over the scored events with event time in ``(s - window, s]``.

    - ``count``: how many events;
    - ``mean``: the mean of ``field`` (null without events in the window);
    - ``positive_share``: the events whose label was known at ``s`` and positive, over all events;
    - ``labels_known``: the events whose label was known at ``s`` (either class).
    """

    name: str
    function: SnapshotFunction
    window: timedelta
    field: str | None = None
    description: str = ""
    retrain_on_drift: bool = True
    """See :attr:`FeatureSpec.retrain_on_drift`."""

    def __post_init__(self) -> None:
        if (self.function == "mean") != (self.field is not None):
            raise FeatureSetError(f"snapshot aggregate {self.name!r}: a field is given for a mean, and only for one")
        if self.window <= timedelta(0):
            raise FeatureSetError(f"snapshot aggregate {self.name!r}: its window must be positive")

    @property
    def kind(self) -> Kind:
        return "int" if self.function in ("count", "labels_known") else "float"


@dataclass(frozen=True)
class SnapshotView:
    """A batch view over the label store, snapshot at event-time boundaries every ``every``.

    A snapshot at ``s`` reads events with event time in ``(s - window, s]`` and labels known at ``s``.
    Its row is stamped when it became available (:attr:`available`: once every source partition is
    past ``s`` plus the allowed lateness), not at ``s``: training joins by the stamp, so it sees what
    serving saw; :attr:`as_of` keeps ``s``."""

    name: str
    entity: Entity
    every: timedelta
    ttl: timedelta
    aggregates: tuple[SnapshotAggregate, ...]
    as_of: str
    """The column holding the snapshot's time ``s`` (Unix seconds)."""
    available: str
    """The column holding when the snapshot became available (Unix seconds), the row's Feast event time."""
    description: str

    kind: Literal["batch"] = "batch"

    def __post_init__(self) -> None:
        if not self.aggregates:
            raise FeatureSetError(f"snapshot view {self.name!r} declares no aggregate")
        if self.every <= timedelta(0):
            raise FeatureSetError(f"snapshot view {self.name!r}: its period must be positive")

    @property
    def stamp(self) -> str:
        """The column whose time is the row's Feast event timestamp: the view's TTL runs from it."""
        return self.available

    @property
    def window(self) -> timedelta:
        """The longest window: how far back a snapshot reads."""
        return max(aggregate.window for aggregate in self.aggregates)

    @cached_property
    def features(self) -> tuple[FeatureSpec, ...]:
        """Every stored column: the aggregates, then the snapshot's time and when it became available."""
        return (
            *(FeatureSpec(a.name, a.kind, a.description, a.retrain_on_drift) for a in self.aggregates),
            FeatureSpec(self.as_of, "float", "Event time of the snapshot (Unix seconds)."),
            FeatureSpec(self.available, "float", "Event time at which the snapshot became available (Unix seconds)."),
        )

    @property
    def model_features(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.aggregates)

    @property
    def windows(self) -> tuple[DeclaredWindow, ...]:
        """A snapshot before ``T`` (within the TTL) reads events by event time and labels by arrival up to it."""
        reach = self.window + self.ttl
        return (DeclaredWindow(SCORED, "event_time", reach), DeclaredWindow(LABELS, ARRIVAL_TIME, reach))

    @property
    def source_name(self) -> str:
        return f"{self.name}_source"

    @property
    def source_description(self) -> str:
        return f"Snapshots every {self.every} computed by the features service from the label store."


@dataclass(frozen=True)
class TrustedView:
    """A view of the feature service the platform cannot re-run (no declared producer: the use case's own job
    fills it), which the use case vouches for. The recompute check refuses any view it cannot re-run unless it
    is trusted here; the run's report lists each with its reason. Its windows are declared for the window lint."""

    name: str
    reason: str
    """Why it may be trusted: who computes it, and how its point-in-time correctness is known."""
    windows: tuple[DeclaredWindow, ...]

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise FeatureSetError(f"trusted view {self.name!r}: say why it may be trusted")
        if not self.windows:
            raise FeatureSetError(f"trusted view {self.name!r}: declare what it reads (its windows)")


def window_problems(name: str, windows: tuple[DeclaredWindow, ...]) -> list[str]:
    """Why the window lint refuses a view's declared windows (empty: it does not)."""
    problems = []
    for window in windows:
        if window.reaches_to > timedelta(0):
            problems.append(
                f"view {name!r} reads {window.stream} up to {window.reaches_to} past the prediction time "
                f"(by {window.time_column}): a window must end before it"
            )
        if window.stream == LABELS and window.time_column != ARRIVAL_TIME:
            problems.append(
                f"view {name!r} reads labels by {window.time_column!r}: read them by {ARRIVAL_TIME!r}, when "
                "they became known, or a label that arrived after the prediction counts before it"
            )
    return problems


StoredView = StreamingView | SnapshotView
"""A view with rows in the online and offline stores."""


@dataclass(frozen=True)
class ViewColumns:
    """Columns of one stored view that an on-demand view reads."""

    view: str
    features: tuple[str, ...]


OnDemandMode = Literal["python", "pandas"]
"""How an on-demand function takes its batch: Feast's ``mode`` of the same name."""


@dataclass(frozen=True)
class OnDemandView:
    """Features computed at request time from the scored event and stored features.

    ``function`` takes the batch's columns: the request fields (``event_unix`` and :attr:`request_fields`)
    and the :attr:`inputs` columns, and returns the :attr:`features` columns. In ``mode="python"`` (the
    default, Feast's python mode) they are a ``dict`` of lists, a missing value ``None`` (or NaN), and it
    returns a ``dict`` of lists; in ``mode="pandas"`` a DataFrame in and a DataFrame out. Python mode is what
    serving wants: a one-event request costs microseconds instead of building DataFrames (about 2 ms).
    Feast rebuilds the function from its source text, without its module's globals: it must import what it
    uses inside its body. Its name is the view's."""

    function: Callable[[Any], Any]
    request_source: str
    request_fields: tuple[str, ...]
    """Numeric fields of the scored event the function reads, beside ``event_unix``."""
    inputs: tuple[ViewColumns, ...]
    features: tuple[FeatureSpec, ...]
    request_description: str = ""
    mode: OnDemandMode = "python"

    @property
    def name(self) -> str:
        return str(self.function.__name__)

    @property
    def request_columns(self) -> tuple[str, ...]:
        return (*self.request_fields, REQUEST_EVENT_UNIX)

    @cached_property
    def input_columns(self) -> tuple[str, ...]:
        """Every column the function reads: the request columns, then the stored inputs."""
        return (*self.request_columns, *(name for source in self.inputs for name in source.features))

    def compute(self, columns: Mapping[str, Sequence[Any]]) -> dict[str, list[float]]:
        """Run the function on a batch: each of :attr:`input_columns` (one value per event; ``None`` or NaN
        for missing) in, each feature's values out as floats (NaN for missing), whatever the mode.

        Raises:
            KeyError: an input column is not given.
        """
        inputs = {name: list(columns[name]) for name in self.input_columns}
        if self.mode == "pandas":
            import pandas as pd

            frame = self.function(pd.DataFrame(inputs))
            return {spec.name: [_as_float(value) for value in frame[spec.name].tolist()] for spec in self.features}
        out = self.function(inputs)
        return {spec.name: [_as_float(value) for value in out[spec.name]] for spec in self.features}


def _as_float(value: Any) -> float:
    # None, NaN and pandas' NA are all "missing"; NA is neither None nor a float, and float(NA) raises.
    if value is None:
        return math.nan
    try:
        return float(value)
    except TypeError:
        return math.nan


@dataclass(frozen=True)
class FeatureSet:
    """Everything a use case's model reads: the stored views, the on-demand view and the feature service."""

    service: str
    """The Feast feature service: the model's features, versioned by name (a new set is a new service)."""
    streaming: tuple[StreamingView, ...]
    snapshots: tuple[SnapshotView, ...] = ()
    on_demand: OnDemandView | None = None
    request_features: tuple[str, ...] = ()
    """Numeric fields of the scored event the model reads as they are."""
    description: str = ""
    trusted: tuple[TrustedView, ...] = ()
    """Views of the feature service with no producer the platform can re-run, vouched for (:class:`TrustedView`)."""

    def __post_init__(self) -> None:
        self._lint_windows()
        names = [view.name for view in self.views] + ([self.on_demand.name] if self.on_demand else [])
        if len(set(names)) != len(names):
            raise FeatureSetError(f"feature set {self.service!r}: two views share a name among {names}")
        columns = [*(spec.name for view in self.views for spec in view.features), *self.on_demand_features]
        columns += list(self.request_features)
        repeated = sorted({name for name in columns if columns.count(name) > 1})
        if repeated:
            raise FeatureSetError(f"feature set {self.service!r}: features {repeated} are declared twice")
        if self.on_demand is not None:
            stored = {view.name: {spec.name for spec in view.features} for view in self.views}
            for source in self.on_demand.inputs:
                unknown = set(source.features) - stored.get(source.view, set())
                if source.view not in stored or unknown:
                    raise FeatureSetError(
                        f"on-demand view {self.on_demand.name!r} reads {source.view}:{sorted(unknown) or '*'}, "
                        "which no stored view of the set holds"
                    )

    def _lint_windows(self) -> None:
        declared = {view.name for view in self.views}
        both = sorted(declared & {view.name for view in self.trusted})
        if both:
            raise FeatureSetError(
                f"feature set {self.service!r}: {both} are declared views, re-run by the recompute check; "
                "only a view without a declared producer is trusted"
            )
        problems = [
            problem for view in (*self.views, *self.trusted) for problem in window_problems(view.name, view.windows)
        ]
        if problems:
            raise FeatureSetError(f"feature set {self.service!r}: " + "; ".join(problems))

    @property
    def views(self) -> tuple[StoredView, ...]:
        """The stored views, streaming first, in the feature service's order."""
        return (*self.streaming, *self.snapshots)

    def view(self, name: str) -> StoredView:
        for view in self.views:
            if view.name == name:
                return view
        raise KeyError(f"feature set {self.service!r} has no stored view {name!r}")

    @property
    def entities(self) -> tuple[Entity, ...]:
        """The views' entities, each once, in view order."""
        return tuple({view.entity.name: view.entity for view in self.views}.values())

    @property
    def aggregations(self) -> tuple[AggregationView, ...]:
        """The streaming views' aggregations: what the features service computes per event."""
        return tuple(view.aggregation for view in self.streaming)

    @property
    def longest_window(self) -> timedelta:
        """How far back any stored feature reads: after this long, every feature describes only what came since."""
        windows = [
            *(timedelta(microseconds=view.longest_window_us) for view in self.aggregations),
            *(view.window for view in self.snapshots),
        ]
        return max(windows, default=timedelta(0))

    @property
    def on_demand_features(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.on_demand.features) if self.on_demand else ()

    @property
    def model_features(self) -> tuple[str, ...]:
        """Every feature a model of this set may read, in order: the views', the on-demand ones, the request's."""
        return (
            *(name for view in self.views for name in view.model_features),
            *self.on_demand_features,
            *self.request_features,
        )

    def watch_only(self) -> frozenset[str]:
        """Features whose drift is measured but starts no retraining run (:attr:`FeatureSpec.retrain_on_drift`)."""
        specs = [spec for view in self.views for spec in view.features]
        specs += self.on_demand.features if self.on_demand else ()
        return frozenset(spec.name for spec in specs if not spec.retrain_on_drift)
