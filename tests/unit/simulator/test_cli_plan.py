"""What `berg simulate` plans before it sends: times from the command line, default start and onset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import typer

from berg.simulator.traffic import TrafficSimulator
from berg_app.simulator.bounds import bounded
from berg_app.simulator.cli import checked_scenario, parse_event_time, plan_run, simulator_of
from berg_fraud.use_case import fraud

pytestmark = pytest.mark.unit

NOW = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def simulator() -> TrafficSimulator:
    return simulator_of(fraud())


def test_iso_times_are_read_with_their_zone_or_as_utc() -> None:
    assert parse_event_time("2025-01-02T03:04:05Z", "--start") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_event_time("2025-01-02T05:04:05+02:00", "--start") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_event_time("2025-01-02", "--start") == datetime(2025, 1, 2, tzinfo=UTC)
    with pytest.raises(typer.BadParameter):
        parse_event_time("yesterday", "--start")


@pytest.mark.parametrize("scored_events", [20, 2_000])
def test_by_default_the_run_ends_before_now_with_the_onset_halfway(
    simulator: TrafficSimulator, scored_events: int
) -> None:
    run = plan_run(
        simulator,
        now=NOW,
        scenario="covariate_shift",
        scored_events=scored_events,
        seed=7,
        start=None,
        onset=None,
        malformed_share=0.05,
        population=500,
    )
    assert run.plan.start < NOW - run.expected_span
    assert run.plan.onset == run.plan.start + run.expected_span / 2
    events = list(bounded(simulator.events(run.plan), max_scored=scored_events, until=run.until))
    assert sum(e.kind != "label" for e in events) == scored_events
    assert events[-1].event_time < NOW


def test_explicit_times_win_and_future_timestamps_are_in_the_future_of_now(simulator: TrafficSimulator) -> None:
    start = NOW - timedelta(days=400)
    run = plan_run(
        simulator,
        now=NOW,
        scenario="malformed",
        scored_events=100,
        seed=7,
        start=start,
        onset=start,
        malformed_share=1.0,
        population=50,
    )
    assert run.plan.start == start
    assert run.plan.onset == start
    assert run.plan.future_reference == NOW


def test_a_scenario_the_simulator_does_not_play_is_refused_in_one_line_naming_the_known_ones(
    simulator: TrafficSimulator,
) -> None:
    with pytest.raises(SystemExit, match=r"^--scenario: 'viral_campaign' is no scenario of use case 'fraud'; its "):
        checked_scenario(fraud(), "viral_campaign")
    assert checked_scenario(fraud(), "fraud_wave") == "fraud_wave"
    with pytest.raises(ValueError, match=r"'viral_campaign' is no scenario.*baseline, covariate_shift"):
        plan_run(
            simulator,
            now=NOW,
            scenario="viral_campaign",
            scored_events=10,
            seed=7,
            start=None,
            onset=None,
            malformed_share=None,
            population=None,
        )


def test_a_use_case_without_a_simulator_is_refused_in_one_line_naming_it() -> None:
    from dataclasses import replace

    with pytest.raises(SystemExit, match="use case 'fraud' brings no simulator"):
        simulator_of(replace(fraud(), simulator=None))
