"""The fraud case's simulator behind the platform's seam: its scenarios, its plan, and the very same bytes."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from berg.simulator.traffic import TrafficPlan, TrafficSimulator
from berg_app.simulator.bounds import bounded
from berg_fraud.simulator import MALFORMED_CLASSES, FraudSimulator, Simulator
from berg_fraud.use_case import fraud

pytestmark = pytest.mark.unit

START = datetime(2025, 1, 1, tzinfo=UTC)


def test_the_descriptor_brings_the_fraud_simulator() -> None:
    simulator: TrafficSimulator | None = fraud().simulator
    assert isinstance(simulator, FraudSimulator)
    assert simulator.scenarios[0] == "baseline"
    assert {"malformed", simulator.drift_scenario} <= set(simulator.scenarios)
    assert simulator.drift_scenario == "fraud_wave"
    assert dict(simulator.malformed_classes) == {name: spec.stage for name, spec in MALFORMED_CLASSES.items()}


def test_the_plan_reaches_the_process() -> None:
    simulator = FraudSimulator(merchants=40)
    onset = START + timedelta(days=3)
    config = simulator.config(
        TrafficPlan(start=START, scenario="malformed", onset=onset, seed=5, population=80, malformed_share=0.2)
    )
    assert (config.start, config.seed, config.users, config.merchants) == (START, 5, 80, 40)
    assert (config.scenario.name, config.scenario.onset, config.scenario.after_onset.malformed_share) == (
        "malformed",
        onset,
        0.2,
    )
    assert simulator.config(TrafficPlan(start=START)).users == 500


def test_an_unknown_scenario_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'viral_campaign'"):
        FraudSimulator().config(TrafficPlan(start=START, scenario="viral_campaign", onset=START))


def test_the_generic_truth_says_what_the_transaction_was() -> None:
    plan = TrafficPlan(start=START, scenario="fraud_wave", onset=START + timedelta(days=1), seed=3, population=100)
    events = list(bounded(FraudSimulator().events(plan), max_scored=5_000))
    scored = [event for event in events if event.kind == "scored"]
    for event in scored:
        assert event.truth.subject_id == json.loads(event.value)["event_id"]
        assert event.truth.positive == (event.truth.cause is not None)
    assert {event.truth.cause for event in scored} >= {None, "cloned_card", "card_testing"}
    expected_span = FraudSimulator().expected_span(plan, len(scored))
    assert expected_span / 2 < events[-1].event_time - START < expected_span * 2


def test_the_stream_is_the_process_of_its_config() -> None:
    simulator = FraudSimulator()
    plan = TrafficPlan(start=START, scenario="label_delay_change", onset=START + timedelta(days=2), seed=9)
    through_the_seam = list(itertools.islice(simulator.events(plan), 2_000))
    directly = list(itertools.islice(Simulator(simulator.config(plan)).events(), 2_000))
    assert through_the_seam == directly


def test_the_demo_stream_keeps_its_bytes() -> None:
    """The first 30,000 records of the drift scenario, seed 7, hash to what they did before the simulator moved
    into this package: ``berg demo``'s outcome (v0002 promoted, tests/e2e/test_demo_lifecycle.py) rests on them."""
    plan = TrafficPlan(start=START, scenario="fraud_wave", onset=START + timedelta(days=10), seed=7, population=500)
    digest = hashlib.sha256()
    for event in itertools.islice(FraudSimulator().events(plan), 30_000):
        headers = repr(list(event.headers)).encode()
        for part in (event.topic.encode(), event.key, event.value, headers, event.event_time.isoformat().encode()):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    assert digest.hexdigest() == "e722e0255c201f20d8de74e65fa102797fb39dd4566e50eaa2f81ca5c52eccb4"
