"""When a batch job over the label store runs next: on its schedule, or soon after new data was stored.

A snapshot is due as soon as the label store holds what it needs, but a job that only
runs every ``interval_s`` serves it up to that late. When the stream stores
scored events or labels it nudges the schedule, and the next run starts once the
stream has been quiet for ``quiet_s`` (what arrives together is read by one run, not
by one run per micro-batch), ``min_interval_s`` after the last run started at the
earliest; without a nudge, or under a stream that never pauses, runs are
``interval_s`` apart. With ``min_interval_s`` equal to ``interval_s`` a nudge changes
nothing.

A nudge during a run counts for the next one: the run may have read the store before
that write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RunSchedule"]


class RunSchedule:
    """See the module docstring."""

    def __init__(
        self,
        interval_s: float,
        min_interval_s: float,
        *,
        quiet_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= min_interval_s <= interval_s:
            raise ValueError(f"min_interval_s must be within [0, interval_s={interval_s}], not {min_interval_s}")
        if quiet_s < 0:
            raise ValueError(f"quiet_s must not be negative, not {quiet_s}")
        self._interval_s = interval_s
        self._min_interval_s = min_interval_s
        self._quiet_s = quiet_s
        self._clock = clock
        self._last_start: float | None = None
        self._last_nudge = 0.0
        self._nudged = threading.Event()

    def nudge(self) -> None:
        """New data was stored: run soon (thread-safe)."""
        self._last_nudge = self._clock()
        self._nudged.set()

    def starting(self) -> None:
        """A run starts now: it reads whatever was stored before this moment."""
        self._last_start = self._clock()
        self._nudged.clear()

    def seconds_until_due(self) -> float:
        """How long until the next run is due (0: now)."""
        if self._last_start is None:
            return 0.0
        due = self._last_start + self._interval_s
        if self._nudged.is_set() and self._min_interval_s < self._interval_s:
            due = min(due, max(self._last_start + self._min_interval_s, self._last_nudge + self._quiet_s))
        return max(0.0, due - self._clock())

    def wait(self, stop: threading.Event) -> None:
        """Block until the next run is due or ``stop`` is set (call :meth:`nudge` after setting it, to
        wake a wait at once)."""
        while not stop.is_set():
            remaining = self.seconds_until_due()
            if remaining <= 0:
                return
            if self._nudged.is_set():
                # Nudged already: the minimum spacing or the quiet time is left to wait out (a later
                # nudge moves the quiet time on: the loop asks again).
                stop.wait(remaining)
            else:
                self._nudged.wait(remaining)
