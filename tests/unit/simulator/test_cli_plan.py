"""What `berg simulate` plans before it sends: times from the command line, default start and onset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import typer

from berg.simulator.bounds import bounded
from berg.simulator.cli import parse_event_time, plan_run
from berg.simulator.generator import simulate

pytestmark = pytest.mark.unit

NOW = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)


def test_iso_times_are_read_with_their_zone_or_as_utc() -> None:
    assert parse_event_time("2025-01-02T03:04:05Z", "--start") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_event_time("2025-01-02T05:04:05+02:00", "--start") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_event_time("2025-01-02", "--start") == datetime(2025, 1, 2, tzinfo=UTC)
    with pytest.raises(typer.BadParameter):
        parse_event_time("yesterday", "--start")


@pytest.mark.parametrize("transactions", [20, 2_000])
def test_by_default_the_run_ends_before_now_with_the_onset_halfway(transactions: int) -> None:
    run = plan_run(
        now=NOW,
        scenario="covariate_shift",
        transactions=transactions,
        seed=7,
        start=None,
        onset=None,
        malformed_share=0.05,
        users=500,
        merchants=100,
    )
    assert run.config.start < NOW - run.expected_span
    assert run.config.scenario.onset == run.config.start + run.expected_span / 2
    events = list(bounded(simulate(run.config), max_transactions=transactions, until=run.until))
    assert sum(e.kind != "label" for e in events) == transactions
    assert events[-1].event_time < NOW


def test_explicit_times_win_and_future_timestamps_are_in_the_future_of_now() -> None:
    start = NOW - timedelta(days=400)
    run = plan_run(
        now=NOW,
        scenario="malformed",
        transactions=100,
        seed=7,
        start=start,
        onset=start,
        malformed_share=1.0,
        users=50,
        merchants=30,
    )
    assert run.config.start == start
    assert run.config.scenario.onset == start
    assert run.config.malformed.future_reference == NOW
