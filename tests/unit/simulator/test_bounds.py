"""Cutting the endless stream by a count of scored records and by event time."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from berg.simulator.traffic import SimulatedEvent, TrafficPlan
from berg_app.simulator.bounds import bounded
from berg_fraud.use_case import fraud

pytestmark = pytest.mark.unit

START = datetime(2025, 3, 1, tzinfo=UTC)


def stream(scenario: str = "baseline") -> Iterator[SimulatedEvent]:
    """The reference use case's traffic, through the seam; malformed from the fifth day on."""
    simulator = fraud().simulator
    assert simulator is not None
    onset = None if scenario == "baseline" else START + timedelta(days=5)
    return simulator.events(TrafficPlan(start=START, scenario=scenario, onset=onset, population=300))


def test_a_count_bound_counts_valid_and_malformed_scored_records() -> None:
    events = list(bounded(stream("malformed"), max_scored=12_000))
    assert sum(e.kind != "label" for e in events) == 12_000
    assert {e.kind for e in events} == {"scored", "malformed", "label"}
    assert events[-1].kind != "label"


def test_a_time_bound_stops_before_the_first_later_event() -> None:
    until = START + timedelta(days=2)
    events = list(bounded(stream(), until=until))
    assert events
    assert all(e.event_time < until for e in events)
    endless = itertools.islice(stream(), len(events) + 1)
    assert list(endless)[-1].event_time >= until


def test_the_tighter_bound_wins() -> None:
    by_count = list(bounded(stream(), max_scored=100, until=START + timedelta(days=30)))
    assert sum(e.kind != "label" for e in by_count) == 100
    assert list(bounded(stream(), max_scored=0)) == []
    with pytest.raises(ValueError, match="negative"):
        list(bounded(stream(), max_scored=-1))
