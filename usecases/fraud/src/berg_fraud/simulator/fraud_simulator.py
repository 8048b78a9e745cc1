"""The fraud case's side of the simulator seam: card traffic for a :class:`~berg.simulator.traffic.TrafficPlan`.

:class:`FraudSimulator` turns the platform's plan (start, scenario, onset, seed,
population of card holders) into a :class:`~berg_fraud.simulator.generator.SimulationConfig`
and plays it. The records it emits carry the generic truth: ``subject_id`` is the
transaction's event id, ``positive`` whether it is fraud, ``cause`` its fraud pattern.
The richer process (patterns, profiles, label policy) stays in this package.

Example:
    >>> simulator = FraudSimulator()
    >>> plan = TrafficPlan(start=start, scenario="fraud_wave", onset=onset, seed=7)
    >>> events = bounded(simulator.events(plan), max_scored=10_000)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from berg.simulator.traffic import RefusingStage, SimulatedEvent, TrafficPlan
from berg_fraud.simulator.generator import SimulationConfig, Simulator
from berg_fraud.simulator.labels import LabelPolicy
from berg_fraud.simulator.malformed import MALFORMED_CLASSES, MalformedOptions
from berg_fraud.simulator.scenarios import DEFAULT_MALFORMED_SHARE, SCENARIO_NAMES, ScenarioName, make_scenario

__all__ = ["DEFAULT_CARD_HOLDERS", "DEFAULT_MERCHANTS", "FraudSimulator"]

DEFAULT_CARD_HOLDERS = 500
"""Card holders when the plan names no population."""
DEFAULT_MERCHANTS = 100


@dataclass(frozen=True)
class FraudSimulator:
    """Card payments, their chargebacks and reviews, and malformed records, by scenario.

    The plan's population is the number of card holders; the merchants are this simulator's own knob.
    """

    merchants: int = DEFAULT_MERCHANTS
    label_policy: LabelPolicy = field(default_factory=LabelPolicy)

    @property
    def scenarios(self) -> tuple[str, ...]:
        """Baseline, covariate_shift, concept_drift, fraud_wave, label_delay_change, malformed (:mod:`.scenarios`)."""
        return SCENARIO_NAMES

    @property
    def drift_scenario(self) -> str:
        """``fraud_wave``: the inputs move and a new fraud pattern rides the shift (docs/simulator.md)."""
        return "fraud_wave"

    @property
    def malformed_classes(self) -> Mapping[str, RefusingStage]:
        """Each malformed class and the stage that refuses it (:data:`.malformed.MALFORMED_CLASSES`)."""
        return MappingProxyType({name: spec.stage for name, spec in MALFORMED_CLASSES.items()})

    def config(self, plan: TrafficPlan) -> SimulationConfig:
        """The generative process's configuration for ``plan``.

        Raises:
            ValueError: the plan's scenario is not one of :attr:`scenarios`.
        """
        malformed_share = DEFAULT_MALFORMED_SHARE if plan.malformed_share is None else plan.malformed_share
        return SimulationConfig(
            start=plan.start,
            scenario=make_scenario(_scenario_name(plan.scenario), plan.onset, malformed_share=malformed_share),
            seed=plan.seed,
            users=DEFAULT_CARD_HOLDERS if plan.population is None else plan.population,
            merchants=self.merchants,
            labels=self.label_policy,
            malformed=MalformedOptions(future_reference=plan.future_reference),
        )

    def expected_span(self, plan: TrafficPlan, scored_events: int) -> timedelta:
        """About how much event time ``scored_events`` transactions of the plan's baseline take (its population's
        daily rate; the scenario does not change it)."""
        return Simulator(self.config(plan)).expected_span(scored_events)

    def events(self, plan: TrafficPlan) -> Iterator[SimulatedEvent]:
        """The plan's transactions, labels and malformed records in event-time order; endless."""
        return Simulator(self.config(plan)).events()


def _scenario_name(name: str) -> ScenarioName:
    for known in SCENARIO_NAMES:
        if known == name:
            return known
    raise ValueError(f"unknown scenario {name!r}; known: {list(SCENARIO_NAMES)}")
