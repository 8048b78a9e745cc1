"""A model version's drift window: its predictions over the newest whole cycles of scored event time.

Traffic has a daily cycle (people pay by day, the simulator's users too), and a
version's reference profile covers days of training traffic. A window of the last
N predictions holds whatever part of the day N happens to cover, so it compares
those hours with the reference's whole days and reads drift on undrifted traffic
(``hour_of_day`` most, and every feature that moves with the hour). So the window
is measured in event time instead: with a cycle of ``cycle_s`` (a day), the window
holds the version's predictions whose scored event time ``t`` lies in the
newest ``k`` whole cycles, ``t > newest - k * cycle_s``, with ``k`` as many as the
version's predictions span, up to ``cycles``. Until they span one whole cycle the
window is *insufficient*: the caller exports no drift for it (a partial day would
read as drift).

The event time is the scored event's (``PredictionV3.scored_event_time``; an older
record that only said when it was served stands at its serving time), as everywhere in the
exporter, so a replay in compressed time has the same windows as real time.

**Memory is a bound, not the window.** At most ``capacity`` rows are held. While the
newest cycles fit, every prediction is held. When they do not, the window keeps a
uniform sample of them: each prediction is held with probability ``2**-level``;
when the rows still inside the cycles fill more than three quarters of the
capacity, every held row is kept with probability 1/2 and the level goes up by one
(so every prediction of the window, old or new, has the same chance to be held;
drawn at random, not every n-th, so the sample cannot alias with the order in
which partitions interleave). Rows older than the newest ``cycles`` cycles leave
first. The level only goes up: after traffic falls the window holds fewer rows, at
the same rate. With ``cycle_s == 0`` the window is the last ``capacity``
predictions, as before whole cycles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["DriftRows", "DriftSpec", "DriftWindow", "LastPredictions", "WholeCycles", "drift_window"]

_THIN_ABOVE = 0.75
"""Share of the capacity still inside the cycles above which the sample is thinned by half (hysteresis: a full
window that only sheds its oldest rows would be compacted at every prediction)."""


@dataclass(frozen=True)
class DriftSpec:
    """How every version's drift window is kept (the exporter's settings)."""

    capacity: int
    """Rows held per version at most (features and score, float64, and the event time)."""
    cycle_s: float = 86_400.0
    """Length of a traffic cycle in event time; 0: the window is the last ``capacity`` predictions."""
    cycles: int = 1
    """Whole cycles the window spans at most."""
    seed: int = 0
    """Seed of the sampling (per version: mixed with the version's name)."""

    def __post_init__(self) -> None:
        if self.capacity < 4:
            raise ValueError(f"capacity must be at least 4 rows, not {self.capacity}")
        if not (math.isfinite(self.cycle_s) and self.cycle_s >= 0):
            raise ValueError(f"cycle_s must be a finite number >= 0, not {self.cycle_s}")
        if self.cycles < 1:
            raise ValueError(f"cycles must be at least 1, not {self.cycles}")


@dataclass(frozen=True)
class DriftRows:
    """The window as it stands: the rows the drift statistics are computed over, and whether they may be."""

    rows: np.ndarray
    """One row per prediction held in the window: the features (in the window's column order), then the score."""
    sufficient: bool
    """The window spans whole cycles (always, without cycles): drift may be judged on it."""
    span_s: float
    """Event time the window covers: its whole cycles when sufficient, else how far the version's predictions
    reach so far (newest minus earliest); without cycles, the newest minus the oldest row held."""
    sample_ratio: float
    """Probability with which each prediction of the window is held (1 unless its cycles outgrew the capacity)."""


class DriftWindow(Protocol):
    """Where a version's served predictions go for drift: :meth:`add` each, :meth:`current` when computing."""

    def add(self, time: float, row: Sequence[float]) -> None:
        """One prediction: its scored event's event time (POSIX seconds) and its row (features, then score)."""

    def current(self) -> DriftRows:
        """A copy of the window's rows now, and whether they span whole cycles."""

    def __len__(self) -> int:
        """Rows held (the window and what it may still need)."""


class LastPredictions:
    """The last ``capacity`` predictions, whatever event time they span (``cycle_s == 0``)."""

    def __init__(self, width: int, capacity: int) -> None:
        self._data = np.full((capacity, width + 1), np.nan)  # the row, then the event time
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, time: float, row: Sequence[float]) -> None:
        self._data[self._next, :-1] = row
        self._data[self._next, -1] = time
        self._next = (self._next + 1) % len(self._data)
        self._size = min(self._size + 1, len(self._data))

    def current(self) -> DriftRows:
        if self._size < len(self._data):
            held = self._data[: self._size]
        else:  # oldest first
            held = np.concatenate((self._data[self._next :], self._data[: self._next]))
        times = held[:, -1]
        span = float(times.max() - times.min()) if len(held) else 0.0
        return DriftRows(held[:, :-1].copy(), sufficient=True, span_s=span, sample_ratio=1.0)


class WholeCycles:
    """A version's predictions over the newest whole cycles of event time, a uniform sample within ``capacity``."""

    def __init__(self, width: int, capacity: int, cycle_s: float, cycles: int, rng: np.random.Generator) -> None:
        if cycle_s <= 0:
            raise ValueError(f"cycle_s must be positive, not {cycle_s}")
        self._values = np.empty((capacity, width))
        self._times = np.empty(capacity)
        self._size = 0
        self._cycle_s = cycle_s
        self._cycles = cycles
        self._rng = rng
        self._level = 0
        self._newest = -math.inf
        self._earliest = math.inf

    def __len__(self) -> int:
        return self._size

    @property
    def sample_ratio(self) -> float:
        return 0.5**self._level

    def _oldest_kept(self) -> float:
        """Rows at or before this event time are outside every window the newest time allows."""
        return self._newest - self._cycles * self._cycle_s

    def add(self, time: float, row: Sequence[float]) -> None:
        self._earliest = min(self._earliest, time)
        self._newest = max(self._newest, time)
        if time <= self._oldest_kept():
            return  # a straggler older than the newest cycles: no window will hold it
        if self._size == len(self._times):
            self._make_room()
        if self._level and self._rng.random() >= self.sample_ratio:
            return
        self._values[self._size] = row
        self._times[self._size] = time
        self._size += 1

    def _make_room(self) -> None:
        """Drop the rows older than the newest cycles; thin the rest by half while they fill too much."""
        keep = self._times[: self._size] > self._oldest_kept()
        while np.count_nonzero(keep) > _THIN_ABOVE * len(self._times):
            keep &= self._rng.random(self._size) < 0.5
            self._level += 1
        kept = int(np.count_nonzero(keep))
        self._values[:kept] = self._values[: self._size][keep]
        self._times[:kept] = self._times[: self._size][keep]
        self._size = kept

    def current(self) -> DriftRows:
        span = self._newest - self._earliest if self._newest > -math.inf else 0.0
        whole = min(self._cycles, math.floor(span / self._cycle_s))
        if whole < 1:
            return DriftRows(self._values[: self._size].copy(), False, span, self.sample_ratio)
        inside = self._times[: self._size] > self._newest - whole * self._cycle_s
        return DriftRows(self._values[: self._size][inside], True, whole * self._cycle_s, self.sample_ratio)


def drift_window(spec: DriftSpec, width: int, version: str) -> DriftWindow:
    """A new, empty window for a version whose rows have ``width`` columns (features, then the score)."""
    if spec.cycle_s == 0:
        return LastPredictions(width, spec.capacity)
    # Seeded by the version's name as well, so two versions do not draw the same sample pattern.
    rng = np.random.default_rng([spec.seed, *version.encode()])
    return WholeCycles(width, spec.capacity, spec.cycle_s, spec.cycles, rng)
