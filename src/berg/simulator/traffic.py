"""The simulator seam: what a use case's traffic simulator gives the platform.

A use case brings a simulator (``UseCase.simulator``) so that ``berg simulate``,
``berg demo`` and the end-to-end tests can run it without knowing its domain.
The simulator turns a :class:`TrafficPlan` (a start, a scenario and its onset, a
seed, a population) into records for Kafka in event-time order: the scored
events, their delayed labels and malformed records, each with the truth behind
it (:class:`EventTruth`), so tests can plant drift and know the right answer.

The platform's part of simulation is generic and lives beside this module:
bounding a stream (:mod:`berg_app.simulator.bounds`), pacing it
(:mod:`berg_app.simulator.pacing`), producing it (:mod:`berg_app.simulator.producer`) and
scoring it against serving (:mod:`berg_app.simulator.scoring`).

Example:
    >>> plan = TrafficPlan(start=start, scenario=simulator.drift_scenario, onset=onset, seed=7)
    >>> events = bounded(simulator.events(plan), max_scored=10_000)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from berg.kafka.records import Headers

__all__ = [
    "MALFORMED_CLASS_HEADER",
    "SCENARIO_HEADER",
    "EventKind",
    "EventTruth",
    "RefusingStage",
    "SimulatedEvent",
    "TrafficPlan",
    "TrafficSimulator",
]

SCENARIO_HEADER = "berg.sim.scenario"
"""Header on every simulated record: the scenario in force at its event time."""
MALFORMED_CLASS_HEADER = "berg.sim.malformed_class"
"""Header on every malformed record: its malformed class. Dead letters keep it."""

EventKind = Literal["scored", "label", "malformed"]
"""A scored event (the use case's scored stream), a label (its labels stream), or a malformed record."""

RefusingStage = Literal["ingestion", "validation"]
"""The stage expected to refuse a malformed class: ingestion (it does not decode against the contract,
or is too large) or validation (it decodes but breaks a data rule)."""


@dataclass(frozen=True, slots=True)
class EventTruth:
    """What the generative process knows about one record, and a consumer cannot see."""

    scenario: str
    """The scenario in force at the record's own event time."""
    subject_id: str
    """The ``event_id`` of the scored event this record is (``scored``), judges (``label``) or was made
    from (``malformed``)."""
    positive: bool
    """Whether that scored event belongs to the positive class (the card's target)."""
    cause: str | None = None
    """Why it is positive, in the use case's own words (the generative process's reason); ``None`` when negative."""
    malformed_class: str | None = None
    """The malformed class of a ``malformed`` record."""
    label_due: datetime | None = None
    """For a ``scored`` event: when its label arrives; ``None`` when it never gets one."""


@dataclass(frozen=True, slots=True)
class SimulatedEvent:
    """One record for Kafka, in event-time order, with the truth behind it."""

    topic: str
    key: bytes
    """The record's key: the stream's key field, UTF-8."""
    value: bytes
    headers: Headers
    event_time: datetime
    kind: EventKind
    truth: EventTruth


@dataclass(frozen=True, slots=True)
class TrafficPlan:
    """Everything that determines a simulated stream; the same plan gives the same bytes."""

    start: datetime
    """Event time at which the process starts (timezone-aware)."""
    scenario: str = "baseline"
    """One of the simulator's :attr:`TrafficSimulator.scenarios`; ``baseline`` changes nothing."""
    onset: datetime | None = None
    """When the scenario begins; required for every scenario but ``baseline``."""
    seed: int = 7
    population: int | None = None
    """How many subjects make the traffic (card holders, viewers); ``None``: the simulator's default."""
    malformed_share: float | None = None
    """Share of scored records replaced by malformed ones under the ``malformed`` scenario; ``None``: its default."""
    future_reference: datetime | None = None
    """A malformed class that puts an event in the future puts it after this wall time (default: its event time)."""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.scenario != "baseline" and self.onset is None:
            raise ValueError(f"scenario {self.scenario!r} needs an onset")
        if self.onset is not None and self.onset.tzinfo is None:
            raise ValueError("the onset must be timezone-aware")
        if self.population is not None and self.population < 1:
            raise ValueError(f"population must be at least 1, got {self.population}")


class TrafficSimulator(Protocol):
    """A use case's traffic: the scored events, their labels and malformed records of a plan.

    ``scenarios`` starts with ``baseline`` and includes ``malformed`` (a share of scored records
    replaced by malformed ones from the onset on); ``drift_scenario`` is the one ``berg demo``
    plays: a change whose old model degrades and whose retrained model the gate should promote.
    """

    @property
    def scenarios(self) -> tuple[str, ...]:
        """Every scenario this simulator plays, ``baseline`` first."""
        ...

    @property
    def drift_scenario(self) -> str:
        """The scenario of the retraining story ``berg demo`` tells."""
        ...

    @property
    def malformed_classes(self) -> Mapping[str, RefusingStage]:
        """Each malformed class this simulator makes, and the stage expected to refuse it."""
        ...

    def expected_span(self, plan: TrafficPlan, scored_events: int) -> timedelta:
        """About how much event time ``scored_events`` scored events of ``plan``'s baseline take."""
        ...

    def events(self, plan: TrafficPlan) -> Iterator[SimulatedEvent]:
        """The plan's records in event-time order; endless: the caller bounds it."""
        ...
