"""Simulated runs shared by the simulator's unit tests, each generated once per test session."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from berg.simulator.traffic import SimulatedEvent
from berg_app.simulator.bounds import bounded
from berg_fraud.simulator.generator import SimulationConfig, Simulator
from berg_fraud.simulator.labels import LabelPolicy
from berg_fraud.simulator.malformed import MalformedOptions
from berg_fraud.simulator.scenarios import ScenarioName, make_scenario

START = datetime(2025, 3, 1, tzinfo=UTC)
USERS = 300
"""About 600 legitimate transactions a day: a 12,000-transaction run spans about 20 days."""
ONSET = START + timedelta(days=10)
SMALL_OVERSIZED = MalformedOptions(oversized_bytes=4_096, future_reference=START)
"""Bulk runs keep oversized records small so a cached run does not hold hundreds of MiB."""


def config(
    scenario: ScenarioName = "baseline",
    *,
    seed: int = 7,
    malformed_share: float = 0.05,
    labels: LabelPolicy | None = None,
    malformed: MalformedOptions = SMALL_OVERSIZED,
) -> SimulationConfig:
    return SimulationConfig(
        start=START,
        scenario=make_scenario(scenario, ONSET, malformed_share=malformed_share),
        seed=seed,
        users=USERS,
        merchants=60,
        labels=labels or LabelPolicy(),
        malformed=malformed,
    )


@functools.cache
def run(scenario: ScenarioName = "baseline", transactions: int = 12_000, seed: int = 7) -> tuple[SimulatedEvent, ...]:
    """A bounded run with the test population; cached, so tests share it."""
    return tuple(bounded(Simulator(config(scenario, seed=seed)).events(), max_scored=transactions))


def of_kind(events: Iterable[SimulatedEvent], kind: str) -> list[SimulatedEvent]:
    return [event for event in events if event.kind == kind]


def payload(event: SimulatedEvent) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(event.value)
    return decoded


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
