"""The same configuration gives the same bytes; another seed gives other bytes."""

from __future__ import annotations

import pytest
from usecases.fraud.tests.simulator.streams import config

from berg.simulator.traffic import SimulatedEvent
from berg_app.simulator.bounds import bounded
from berg_fraud.simulator.generator import Simulator, simulate
from berg_fraud.simulator.scenarios import ScenarioName

pytestmark = pytest.mark.unit


def records(events: tuple[SimulatedEvent, ...] | list[SimulatedEvent]) -> list[tuple[str, bytes, bytes, object]]:
    return [(e.topic, e.key, e.value, e.headers) for e in events]


@pytest.mark.parametrize("scenario", ["baseline", "malformed", "concept_drift"])
def test_same_seed_gives_the_same_records(scenario: ScenarioName) -> None:
    first = list(bounded(simulate(config(scenario, seed=11, malformed_share=0.3)), max_scored=3_000))
    second = list(bounded(simulate(config(scenario, seed=11, malformed_share=0.3)), max_scored=3_000))
    assert records(first) == records(second)
    assert [e.truth for e in first] == [e.truth for e in second]


def test_one_simulator_replays_the_same_stream() -> None:
    simulator = Simulator(config(seed=3))
    first = list(bounded(simulator.events(), max_scored=500))
    second = list(bounded(simulator.events(), max_scored=500))
    assert records(first) == records(second)


def test_another_seed_gives_other_records() -> None:
    first = list(bounded(simulate(config(seed=1)), max_scored=500))
    second = list(bounded(simulate(config(seed=2)), max_scored=500))
    assert {e.value for e in first}.isdisjoint({e.value for e in second})
    assert Simulator(config(seed=1)).population != Simulator(config(seed=2)).population
