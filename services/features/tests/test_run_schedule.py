"""The merchant job's schedule: every interval, or the minimum spacing after a nudge from the stream."""

from __future__ import annotations

import threading

import pytest

from berg_features.run_schedule import RunSchedule

pytestmark = pytest.mark.unit

HANG_BOUND_S = 120.0
"""Only bounds a hang: the waits below end on an event, not on time."""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_runs_are_an_interval_apart_without_new_data_and_the_minimum_spacing_apart_with_it() -> None:
    clock = Clock()
    schedule = RunSchedule(10.0, 1.0, quiet_s=0.0, clock=clock)
    assert schedule.seconds_until_due() == 0  # the first run at once
    schedule.starting()
    clock.now += 0.25
    assert schedule.seconds_until_due() == pytest.approx(9.75)
    schedule.nudge()
    assert schedule.seconds_until_due() == pytest.approx(0.75)
    clock.now += 2
    assert schedule.seconds_until_due() == 0


def test_a_nudged_run_waits_for_the_stream_to_pause_but_never_past_the_interval() -> None:
    clock = Clock()
    schedule = RunSchedule(10.0, 1.0, quiet_s=0.5, clock=clock)
    schedule.starting()
    clock.now += 2
    schedule.nudge()
    assert schedule.seconds_until_due() == pytest.approx(0.5)  # one micro-batch: the rest may follow
    clock.now += 0.4
    schedule.nudge()
    assert schedule.seconds_until_due() == pytest.approx(0.5)
    clock.now += 0.5
    assert schedule.seconds_until_due() == 0  # quiet for 0.5 s: one run reads them all
    for _ in range(40):  # a stream that never pauses: the schedule's interval
        clock.now += 0.25
        schedule.nudge()
    assert clock.now > 1_000.0 + 10.0
    assert schedule.seconds_until_due() == 0


def test_a_nudge_during_a_run_counts_for_the_next_and_one_before_it_is_used_up_by_it() -> None:
    clock = Clock()
    schedule = RunSchedule(10.0, 1.0, quiet_s=0.0, clock=clock)
    schedule.nudge()
    schedule.starting()  # this run reads what the nudge announced
    assert schedule.seconds_until_due() == pytest.approx(10.0)
    clock.now += 0.5
    schedule.nudge()  # written while the run read: the next run must read it
    assert schedule.seconds_until_due() == pytest.approx(0.5)


def test_equal_spacings_make_a_nudge_change_nothing() -> None:
    clock = Clock()
    schedule = RunSchedule(5.0, 5.0, clock=clock)
    schedule.starting()
    schedule.nudge()
    assert schedule.seconds_until_due() == pytest.approx(5.0)


def test_a_minimum_spacing_outside_the_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="min_interval_s"):
        RunSchedule(5.0, 6.0)
    with pytest.raises(ValueError, match="min_interval_s"):
        RunSchedule(5.0, -1.0)
    with pytest.raises(ValueError, match="quiet_s"):
        RunSchedule(5.0, 1.0, quiet_s=-1)


def _wait_in_thread(schedule: RunSchedule, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=schedule.wait, args=(stop,), daemon=True)
    thread.start()
    return thread


def test_a_nudge_wakes_a_wait_that_would_last_an_hour() -> None:
    schedule = RunSchedule(3600.0, 0.0, quiet_s=0.0)
    schedule.starting()
    stop = threading.Event()
    waiting = _wait_in_thread(schedule, stop)
    schedule.nudge()
    waiting.join(HANG_BOUND_S)
    assert not waiting.is_alive()
    assert not stop.is_set()


def test_stop_then_nudge_ends_a_wait_at_once() -> None:
    schedule = RunSchedule(3600.0, 3600.0)
    schedule.starting()
    stop = threading.Event()
    waiting = _wait_in_thread(schedule, stop)
    stop.set()
    schedule.nudge()
    waiting.join(HANG_BOUND_S)
    assert not waiting.is_alive()
