"""Cutting the endless stream by a count of transaction records and by event time."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from berg.simulator.bounds import bounded
from berg.simulator.generator import simulate
from tests.unit.simulator.streams import START, config, run

pytestmark = pytest.mark.unit


def test_a_count_bound_counts_valid_and_malformed_transaction_records() -> None:
    events = run("malformed")
    assert sum(e.kind != "label" for e in events) == 12_000
    assert events[-1].kind != "label"


def test_a_time_bound_stops_before_the_first_later_event() -> None:
    until = START + timedelta(days=2)
    events = list(bounded(simulate(config()), until=until))
    assert events
    assert all(e.event_time < until for e in events)
    endless = itertools.islice(simulate(config()), len(events) + 1)
    assert list(endless)[-1].event_time >= until


def test_the_tighter_bound_wins() -> None:
    by_count = list(bounded(simulate(config()), max_transactions=100, until=START + timedelta(days=30)))
    assert sum(e.kind != "label" for e in by_count) == 100
    assert list(bounded(simulate(config()), max_transactions=0)) == []
    with pytest.raises(ValueError, match="negative"):
        list(bounded(simulate(config()), max_transactions=-1))
