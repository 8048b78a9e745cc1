"""The clicks case's traffic simulator (:class:`berg.simulator.traffic.TrafficSimulator`).

Viewers with activity hours are shown campaigns' ads (:mod:`.audience`); each impression is
clicked or not by a process the tests know (:mod:`.propensity`, :mod:`.process`); the scenarios
change that process from an onset (:mod:`.scenarios`); the ``malformed`` scenario replaces a
share of impressions by records the platform must refuse (:mod:`.malformed`).

Example:
    >>> simulator = ClicksSimulator()
    >>> plan = TrafficPlan(start=start, scenario=simulator.drift_scenario, onset=start + timedelta(days=2))
    >>> for event in simulator.events(plan): ...
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

from berg.simulator.traffic import RefusingStage, SimulatedEvent, TrafficPlan
from berg_clicks.simulator.malformed import MALFORMED_CLASSES
from berg_clicks.simulator.process import Process
from berg_clicks.simulator.scenarios import DRIFT_SCENARIO, SCENARIOS

__all__ = ["ClicksSimulator"]


@dataclass(frozen=True)
class ClicksSimulator:
    """The clicks case's traffic: a few weeks of it at the defaults are tens of thousands of impressions."""

    viewers: int = 300
    """Viewers, unless the plan's ``population`` says otherwise: about 1,800 impressions a day, so the month
    of event time ``berg demo`` replays is about 80,000 impressions."""
    campaigns: int = 20
    malformed_share: float = 0.05
    """Share of impressions replaced by malformed records under ``malformed``, unless the plan says otherwise."""

    @property
    def scenarios(self) -> tuple[str, ...]:
        """``baseline``, ``site_redesign`` and ``malformed``."""
        return tuple(SCENARIOS)

    @property
    def drift_scenario(self) -> str:
        """``site_redesign``: the slot order of click-through reverses and mobile traffic grows."""
        return DRIFT_SCENARIO

    @property
    def malformed_classes(self) -> Mapping[str, RefusingStage]:
        """Each malformed class and the stage that must refuse it."""
        return MappingProxyType({name: kind.stage for name, kind in MALFORMED_CLASSES.items()})

    def expected_span(self, plan: TrafficPlan, scored_events: int) -> timedelta:
        """About how much event time ``scored_events`` impressions of ``plan``'s baseline take."""
        return timedelta(days=scored_events / self._process(plan).audience.daily_impressions)

    def events(self, plan: TrafficPlan) -> Iterator[SimulatedEvent]:
        """The plan's records in event-time order; endless: the caller bounds it."""
        return self._process(plan).events()

    def _process(self, plan: TrafficPlan) -> Process:
        return Process(plan, viewers=self.viewers, campaigns=self.campaigns, malformed_share=self.malformed_share)
