"""Simulated streams the clicks tests share: each is generated once per session (a second or two each)."""

from __future__ import annotations

import pytest
from usecases.clicks.tests.streams import ONSET, SMALL, START, stream

from berg.simulator.traffic import SimulatedEvent, TrafficPlan
from berg_clicks.simulator import ClicksSimulator


@pytest.fixture(scope="session")
def baseline_stream() -> list[SimulatedEvent]:
    """Two days of ``baseline``, with an onset that changes nothing."""
    return stream(SMALL, TrafficPlan(start=START, scenario="baseline", onset=ONSET, seed=11))


@pytest.fixture(scope="session")
def malformed_stream() -> list[SimulatedEvent]:
    """The same plan under ``malformed``: a fifth of the impressions from the onset on are malformed."""
    return stream(SMALL, TrafficPlan(start=START, scenario="malformed", onset=ONSET, seed=11, malformed_share=0.2))


@pytest.fixture(scope="session")
def drift_stream() -> list[SimulatedEvent]:
    """A day before and a day after the onset of ``site_redesign``, for a larger audience."""
    simulator = ClicksSimulator(viewers=800)
    return stream(simulator, TrafficPlan(start=START, scenario=simulator.drift_scenario, onset=ONSET, seed=5))
