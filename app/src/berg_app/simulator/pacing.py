"""Rate control in wall time: space sends evenly at a given rate, without drift."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Pacer"]


class Pacer:
    """Lets the n-th send go no earlier than ``n / rate`` seconds after the first.

    The schedule is absolute, so a slow send is caught up on rather than
    pushing every later one back. A rate of 0 never waits.

    Example:
        >>> pacer = Pacer(200.0)
        >>> for record in records:
        ...     pacer.wait_turn()
        ...     producer.send(...)
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s < 0:
            raise ValueError(f"rate_per_s must not be negative, got {rate_per_s}")
        self.rate_per_s = rate_per_s
        self._clock = clock
        self._sleep = sleep
        self._first: float | None = None
        self._turns = 0

    def wait_turn(self) -> None:
        """Block until the next send is due."""
        if self.rate_per_s == 0:
            return
        if self._first is None:
            self._first = self._clock()
        due = self._first + self._turns / self.rate_per_s
        self._turns += 1
        delay = due - self._clock()
        if delay > 0:
            self._sleep(delay)
