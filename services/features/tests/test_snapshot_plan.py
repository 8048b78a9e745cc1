"""The snapshot job's plan: which snapshot days what arrived changes, however old, and in what order."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berg_features.snapshot_plan import SnapshotPlan, contiguous_runs, days_changed_by, next_plan
from berg_features.snapshots import snapshot_times

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR, WINDOW = timedelta(hours=1), timedelta(days=30)


def snapshots_reading(first: datetime, last: datetime, until: datetime) -> set[date]:
    """Brute force: the days of the hourly snapshots up to ``until`` whose window (s - 30 d, s] holds
    an event time in [first, last] (labels: known from their time on, so the same set)."""
    return {
        s.date()
        for s in snapshot_times(first - timedelta(days=1), until, HOUR)
        if any(s - WINDOW < t <= s for t in (first, last, first + (last - first) / 2))
    }


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 24 * 90), st.integers(0, 23), st.integers(24 * 60, 24 * 200))
def test_an_arrival_changes_exactly_the_snapshot_days_whose_window_it_falls_in(
    start_hours: int, span_hours: int, watermark_hours: int
) -> None:
    first = T0 + timedelta(hours=start_hours, minutes=17)
    last = first + timedelta(hours=span_hours)
    watermark = T0 + timedelta(hours=watermark_hours)
    plan = next_plan(SnapshotPlan(watermark, frozenset()), watermark, [(first, last)], window=WINDOW)
    expected = snapshots_reading(first, last, watermark)
    # Whole days are recomputed: every day holding an affected snapshot, and none after the watermark.
    assert expected <= plan.pending
    assert plan.pending <= days_changed_by(first, last, WINDOW)
    assert all(day <= watermark.date() for day in plan.pending)


def test_the_watermark_moving_adds_its_days_and_never_goes_back() -> None:
    first = next_plan(None, T0 + timedelta(hours=5), [], first_day=date(2026, 2, 27), window=WINDOW)
    assert first.pending == {date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)}
    done = first.without(first.pending)
    later = next_plan(done, T0 + timedelta(days=2, hours=1), [], window=WINDOW)
    assert later.pending == {date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)}
    stalled = next_plan(later.without(later.pending), T0, [], window=WINDOW)
    assert stalled.watermark == T0 + timedelta(days=2, hours=1)
    assert stalled.pending == frozenset()  # nothing moved, nothing arrived: nothing to do


def test_a_late_backfill_far_behind_the_watermark_is_planned_and_worked_through_newest_first() -> None:
    watermark = T0 + timedelta(days=60)
    plan = next_plan(SnapshotPlan(watermark, frozenset()), watermark, [(T0, T0 + timedelta(hours=3))], window=WINDOW)
    assert min(plan.pending) == T0.date()
    assert len(plan.pending) == 31
    # A view reading a day back: an arrival changes its own day and the next.
    short = next_plan(
        SnapshotPlan(watermark, frozenset()), watermark, [(T0, T0 + timedelta(hours=3))], window=HOUR * 24
    )
    assert short.pending == {T0.date(), T0.date() + timedelta(days=1)}
    assert plan.newest(7) == sorted(plan.pending)[-7:]
    assert plan.without(plan.newest(7)).newest(100) == sorted(plan.pending)[:-7]


def test_a_plan_survives_a_restart_through_its_stored_form() -> None:
    plan = SnapshotPlan(
        T0 + timedelta(hours=7, minutes=3),
        frozenset({date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 5), date(2026, 2, 1)}),
    )
    assert SnapshotPlan.from_json(plan.to_json()) == plan
    assert [len(run) for run in contiguous_runs(plan.pending)] == [2, 1, 1]
