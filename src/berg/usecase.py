"""A use case as a plug-in: what a model's domain brings to the platform, found by name.

Berg is generic; a use case (the reference one ships in ``usecases/``) is a package of its
own that declares a :class:`UseCase` and registers a factory for it in the
``berg.use_cases`` entry-point group, the way pytest and Feast find plug-ins::

    # usecases/churn/pyproject.toml
    [project.entry-points."berg.use_cases"]
    churn = "berg_churn.use_case:churn"

Services, the pipeline and the ``berg`` command load it once at start-up by name
(the ``BERG_USE_CASE`` setting) with :func:`load_use_case` and pass it down; no
platform module imports a use-case package.

The descriptor grows as the platform's seams move onto it; today it names the
problem card, the two streams (the events scored and their delayed labels), how a
label joins the event it judges, the data rules validation and serving apply,
and the streaming aggregations the features service computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from pydantic import BaseModel

from berg.contracts.predictions import LegacyPrediction, PredictionLogReader, PredictionLogReaderError
from berg.contracts.rules import ContractRules
from berg.features.feature_set import FeatureSet
from berg.problem.card import ProblemCard

if TYPE_CHECKING:
    from berg.simulator.traffic import TrafficSimulator

__all__ = [
    "ENTRY_POINT_GROUP",
    "LabelJoin",
    "Stream",
    "UseCase",
    "UseCaseError",
    "installed_use_cases",
    "load_use_case",
    "resolve_use_case",
    "resolve_use_case_or_exit",
]

ENTRY_POINT_GROUP = "berg.use_cases"


class UseCaseError(LookupError):
    """A use case that is not installed, or whose package does not declare a valid one."""


@dataclass(frozen=True)
class Stream:
    """One stream of events: its contract, its three topics and the field its records are keyed by.

    The contract has an ``event_id`` (sinks are idempotent on it) and an ``event_time`` (sinks
    partition by it), like every Berg contract."""

    name: str
    contract: type[BaseModel]
    raw_topic: str
    ingested_topic: str
    valid_topic: str
    key: str

    def __post_init__(self) -> None:
        # Every sink is idempotent on event_id and partitioned by event_time: the platform's two conventions.
        for field in (self.key, "event_id", "event_time"):
            if field not in self.contract.model_fields:
                raise UseCaseError(f"stream {self.name!r}: {field!r} is no field of {self.contract.__name__}")


@dataclass(frozen=True)
class LabelJoin:
    """How a label finds the event it judges, and what it says about it."""

    event_id: str
    """The scored event's id field."""
    subject_id: str
    """The label's field holding that id."""
    target: str
    """The label's boolean verdict: the positive class."""
    amount: str | None = None
    """The scored event's money field, when business metrics price decisions by it."""


@dataclass(frozen=True)
class UseCase:
    """Everything a use case brings: its problem card, its streams, its label join, its features and its data rules."""

    name: str
    card: ProblemCard
    scored: Stream
    labels: Stream
    label_join: LabelJoin
    features: FeatureSet
    """The model's features (:mod:`berg.features.feature_set`): the streaming views the features service
    computes, the snapshot views it builds from the label store, the on-demand view and the Feast feature
    service; the Feast repo, serving and training are built from it."""
    rules: type[ContractRules] = ContractRules
    """The rules' parameters and which value and batch rule applies to which field of which stream
    (:mod:`berg.contracts.rules`); validation and serving nest it in their settings."""
    legacy_predictions: tuple[type[LegacyPrediction], ...] = ()
    """Versions of the prediction log its serving wrote before today's :class:`~berg.contracts.PredictionV3`
    (:mod:`berg.contracts.predictions`): monitoring reads records still on the topic in them as today's."""
    simulator: TrafficSimulator | None = None
    """Its traffic (:mod:`berg.simulator.traffic`): what ``berg simulate``, ``berg demo`` and the end-to-end
    tests produce; ``None``: the use case brings no simulator, and those refuse it by name."""

    @property
    def streams(self) -> tuple[Stream, Stream]:
        """The scored events' stream and the labels' stream."""
        return (self.scored, self.labels)

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic of its streams, stage by stage: the raw ones, the ingested ones, the valid ones."""
        return tuple(
            topic
            for stage in ("raw_topic", "ingested_topic", "valid_topic")
            for topic in (getattr(self.scored, stage), getattr(self.labels, stage))
        )

    @property
    def raw_topics(self) -> tuple[str, str]:
        """The topics producers write its streams to."""
        return (self.scored.raw_topic, self.labels.raw_topic)

    def __post_init__(self) -> None:
        join, scored, labels = self.label_join, self.scored.contract, self.labels.contract
        for field, contract in (
            (join.event_id, scored),
            (join.subject_id, labels),
            (join.target, labels),
            *(((join.amount, scored),) if join.amount else ()),
        ):
            if field not in contract.model_fields:
                raise UseCaseError(
                    f"use case {self.name!r}: its label join names {field!r}, no field of {contract.__name__}"
                )
        self._check_rules()
        self._check_features()
        try:
            PredictionLogReader(self.legacy_predictions)
        except PredictionLogReaderError as error:
            raise UseCaseError(f"use case {self.name!r}: its legacy predictions: {error}") from None
        if self.card.target.column != join.target:
            raise UseCaseError(
                f"use case {self.name!r}: the problem card's target is {self.card.target.column!r}, "
                f"the label join's is {join.target!r}"
            )

    def _check_rules(self) -> None:
        # Under the default parameters: a rule naming a field its stream does not have is a typo
        # that would otherwise surface as a GX error on the first batch.
        defaults = self.rules()
        for stream in self.streams:
            for rule in (*defaults.value_rules(stream.name), *defaults.batch_rules(stream.name)):
                if rule.field not in stream.contract.model_fields:
                    raise UseCaseError(
                        f"use case {self.name!r}: a rule of stream {stream.name!r} names {rule.field!r}, "
                        f"no field of {stream.contract.__name__}"
                    )

    def _check_features(self) -> None:
        contract = self.scored.contract
        features, on_demand = self.features, self.features.on_demand
        reads = [
            *((view.name, field) for view in features.aggregations for field in (view.key, *view.fields)),
            *(
                (view.name, field)
                for view in features.snapshots
                for field in (view.entity.key, *(a.field for a in view.aggregates if a.field))
            ),
            *(((on_demand.name, field) for field in on_demand.request_fields) if on_demand else ()),
            *(("the request features", field) for field in features.request_features),
        ]
        for view_name, field in reads:
            if field not in contract.model_fields:
                raise UseCaseError(
                    f"use case {self.name!r}: feature view {view_name!r} reads {field!r}, "
                    f"no field of {contract.__name__}"
                )


def _registered() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


def installed_use_cases() -> list[str]:
    """The names of the use cases installed in this environment, sorted."""
    return sorted(_registered())


def load_use_case(name: str) -> UseCase:
    """The use case registered under ``name``.

    Raises:
        UseCaseError: no installed package registers ``name``, or what it registers is no :class:`UseCase`
            of that name; the message lists the installed ones.
    """
    registered = _registered()
    entry = registered.get(name)
    if entry is None:
        installed = ", ".join(sorted(registered)) or "none"
        raise UseCaseError(
            f"no use case named {name!r} is installed (installed: {installed}); install its package "
            f"(it registers itself in the {ENTRY_POINT_GROUP!r} entry-point group) or set BERG_USE_CASE to one of them"
        )
    use_case = entry.load()()
    if not isinstance(use_case, UseCase) or use_case.name != name:
        raise UseCaseError(
            f"the {ENTRY_POINT_GROUP!r} entry point {name!r} ({entry.value}) did not return UseCase {name!r}"
        )
    return use_case


def resolve_use_case(name: str | None) -> UseCase:
    """The use case named ``name``, or, when ``name`` is None, the only one installed.

    Raises:
        UseCaseError: ``name`` is not installed, or it is None and not exactly one use case is.
    """
    if name is not None:
        return load_use_case(name)
    installed = installed_use_cases()
    if len(installed) != 1:
        raise UseCaseError(
            f"{len(installed)} use cases are installed ({', '.join(installed) or 'none'}): "
            "set BERG_USE_CASE to the one to run" + ("" if installed else ", after installing its package")
        )
    return load_use_case(installed[0])


def resolve_use_case_or_exit(name: str | None) -> UseCase:
    """:func:`resolve_use_case` for a process's entry point: exit 1 with one line naming ``BERG_USE_CASE``."""
    try:
        return resolve_use_case(name)
    except UseCaseError as error:
        raise SystemExit(f"BERG_USE_CASE: {error}") from None
