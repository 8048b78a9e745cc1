"""Which days of a snapshot view must be (re)computed: the snapshot job's bookkeeping, pure.

A snapshot at ``s`` reads scored events and labels with event time in
``(s - window, s]`` (the view's longest window; a label counts from its own event
time on, and comes after its event: the contracts say so). So rows that arrive with
event times in ``[first, last]`` change the snapshots in ``[first, last + window)``,
however old they are. A plan holds the watermark the snapshots are computed up to and the set
of days still to (re)compute; each run adds the days the watermark moved over and
the days that what arrived changes, keeps only days up to the watermark (later
snapshots are computed when the watermark gets there), and works through the
newest days first, a bounded number per run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

__all__ = ["SnapshotPlan", "contiguous_runs", "days_changed_by", "next_plan"]

_DAY = timedelta(days=1)


def _days(first: date, last: date) -> set[date]:
    return {first + offset * _DAY for offset in range((last - first).days + 1)}


def days_changed_by(first: datetime, last: datetime, window: timedelta) -> set[date]:
    """The days of the snapshots reading ``window`` back that rows with event times in ``[first, last]`` feed."""
    return _days(first.date(), (last + window).date())


@dataclass(frozen=True)
class SnapshotPlan:
    """Snapshots are computed up to ``watermark``, except on the ``pending`` days."""

    watermark: datetime
    pending: frozenset[date]

    def newest(self, count: int) -> list[date]:
        """The ``count`` newest pending days, oldest first: what one run computes."""
        return sorted(self.pending)[-count:] if count > 0 else []

    def without(self, done: Iterable[date]) -> SnapshotPlan:
        return SnapshotPlan(self.watermark, self.pending - frozenset(done))

    def to_json(self) -> str:
        ranges = [[run[0].isoformat(), run[-1].isoformat()] for run in contiguous_runs(self.pending)]
        return json.dumps({"watermark": self.watermark.isoformat(), "pending": ranges})

    @classmethod
    def from_json(cls, text: str) -> SnapshotPlan:
        state = json.loads(text)
        pending: set[date] = set()
        for first, last in state["pending"]:
            pending |= _days(date.fromisoformat(first), date.fromisoformat(last))
        return cls(datetime.fromisoformat(state["watermark"]), frozenset(pending))


def next_plan(
    previous: SnapshotPlan | None,
    watermark: datetime,
    arrived: Iterable[tuple[datetime, datetime]],
    first_day: date | None = None,
    *,
    window: timedelta,
) -> SnapshotPlan:
    """The plan after a run learns the new watermark and the event-time spans that arrived.

    Args:
        previous: the last plan (None on the first run).
        watermark: the low watermark now; the plan's never goes back.
        arrived: (earliest, latest) event times of rows appended since the last run.
        first_day: on the first run, the oldest day to compute (None: the watermark's day).
        window: how far back a snapshot reads (the view's longest window).
    """
    if previous is None:
        pending = _days(first_day or watermark.date(), watermark.date())
    elif watermark > previous.watermark:
        pending = set(previous.pending) | _days(previous.watermark.date(), watermark.date())
    else:
        watermark, pending = previous.watermark, set(previous.pending)
    for first, last in arrived:
        pending |= days_changed_by(first, last, window)
    return SnapshotPlan(watermark, frozenset(day for day in pending if day <= watermark.date()))


def contiguous_runs(days: Iterable[date]) -> list[list[date]]:
    """``days`` sorted and cut where a day is missing."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] + _DAY == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs
