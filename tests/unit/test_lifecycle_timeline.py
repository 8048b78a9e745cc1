"""The demo's timeline: anchored to a UTC midnight, every act where training will look for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from berg_app.lifecycle.timeline import Timeline, plan_timeline

WINDOW, HORIZON, AFTER = 14.0, 30.0, 2.0


def _plan(now: datetime) -> Timeline:
    return plan_timeline(now, window_days=WINDOW, horizon_days=HORIZON, after_days=AFTER)


@pytest.mark.parametrize(
    ("now", "end"),
    [
        (datetime(2026, 11, 27, 12, 35, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC)),
        (datetime(2026, 11, 27, 0, 30, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)),
        (datetime(2026, 11, 27, 1, 0, tzinfo=UTC), datetime(2026, 11, 27, tzinfo=UTC)),
        # 02:30 at UTC+3 is 23:30 UTC the day before.
        (datetime(2026, 11, 27, 2, 30, tzinfo=timezone(timedelta(hours=3))), datetime(2026, 11, 26, tzinfo=UTC)),
    ],
)
def test_ends_at_the_last_utc_midnight_an_hour_before_now(now: datetime, end: datetime) -> None:
    timeline = _plan(now)
    assert timeline.end == end
    assert timeline.end <= now - timedelta(hours=1)


def test_runs_on_the_same_day_replay_the_same_event_times() -> None:
    morning = _plan(datetime(2026, 11, 27, 8, 0, 1, tzinfo=UTC))
    evening = _plan(datetime(2026, 11, 27, 23, 59, 59, tzinfo=UTC))
    assert morning == evening
    next_day = _plan(datetime(2026, 11, 28, 8, 0, tzinfo=UTC))
    assert next_day.history_start - morning.history_start == timedelta(days=1)


def test_each_training_window_lies_in_its_segment() -> None:
    timeline = _plan(datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    first_start, first_end = timeline.first_window
    assert timeline.history_start <= first_start
    assert first_end <= timeline.onset - timedelta(days=HORIZON)
    challenger_start, challenger_end = timeline.challenger_window
    # The challenger learns the new world only: its window begins after the onset.
    assert timeline.onset < challenger_start
    assert challenger_end <= timeline.drift_end - timedelta(days=HORIZON)
    assert challenger_end - challenger_start == timedelta(days=WINDOW)
    assert timeline.end - timeline.drift_end == timedelta(days=AFTER)


def test_settling_moves_the_onset_back_and_leaves_history_and_windows_their_lengths() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    plain = _plan(now)
    settled = plan_timeline(now, window_days=WINDOW, horizon_days=HORIZON, after_days=AFTER, settle_days=21)
    assert settled.end == plain.end
    assert settled.drift_end == plain.drift_end
    assert settled.challenger_window == plain.challenger_window
    assert plain.onset - settled.onset == timedelta(days=21)
    # The challenger's window starts 21 days (and the margin) after the onset: the settled new world.
    assert settled.challenger_window[0] - settled.onset == timedelta(days=22)
    assert settled.onset - settled.history_start == plain.onset - plain.history_start
    with pytest.raises(ValueError, match="settle_days"):
        plan_timeline(now, window_days=WINDOW, horizon_days=HORIZON, after_days=AFTER, settle_days=-1)


def test_refuses_naive_times_and_empty_spans() -> None:
    with pytest.raises(ValueError, match="timezone"):
        _plan(datetime(2026, 11, 27, 12, 0))
    with pytest.raises(ValueError, match="positive"):
        plan_timeline(datetime(2026, 11, 27, tzinfo=UTC), window_days=0, horizon_days=HORIZON, after_days=AFTER)
