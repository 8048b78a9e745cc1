"""Pacing sends in wall time, against a fake clock."""

from __future__ import annotations

import pytest

from berg_app.simulator.pacing import Pacer

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_sends_are_spaced_at_the_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(4.0, clock=clock, sleep=clock.sleep)
    for _ in range(9):
        pacer.wait_turn()
    assert clock.now == pytest.approx(102.0)
    assert clock.sleeps == pytest.approx([0.25] * 8)


def test_a_slow_send_is_caught_up_on_without_waiting() -> None:
    clock = FakeClock()
    pacer = Pacer(2.0, clock=clock, sleep=clock.sleep)
    pacer.wait_turn()
    clock.now += 1.2  # the first send took longer than two turns
    pacer.wait_turn()
    pacer.wait_turn()
    assert clock.sleeps == []
    pacer.wait_turn()
    assert clock.sleeps == pytest.approx([0.3])


def test_rate_zero_never_waits() -> None:
    clock = FakeClock()
    pacer = Pacer(0.0, clock=clock, sleep=clock.sleep)
    for _ in range(1_000):
        pacer.wait_turn()
    assert clock.sleeps == []
    with pytest.raises(ValueError, match="negative"):
        Pacer(-1.0)
