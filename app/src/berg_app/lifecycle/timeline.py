"""When, in event time, each act of the demo happens: pure arithmetic over the problem card's horizon.

The demo replays months of traffic in minutes, all of it in the past (validation
refuses events from the future). Training reads only label-complete windows:
``window_days`` ending ``horizon_days`` before the newest scored event. So:

- history, ``[history_start, onset)``: long enough that the first model's window,
  which ends ``horizon`` before the onset, lies inside it;
- drift, ``[onset, drift_end)``: long enough that once it is all in, the
  challenger's window lies entirely after the onset (it learns the new world),
  and ``settle_days`` more, so that it starts once the slow features (the use
  case's longest feature window) have taken in the new world: a
  challenger whose reference profile is the transition drifts against its own
  world afterwards;
- after, ``[drift_end, end)``: traffic the promoted challenger serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Timeline", "plan_timeline"]


@dataclass(frozen=True)
class Timeline:
    history_start: datetime
    onset: datetime
    drift_end: datetime
    end: datetime
    window: timedelta
    horizon: timedelta

    @property
    def first_window(self) -> tuple[datetime, datetime]:
        """The first model's training window, once the history is in."""
        end = self.onset - self.horizon
        return end - self.window, end

    @property
    def challenger_window(self) -> tuple[datetime, datetime]:
        """The challenger's training window, once the drift segment is in."""
        end = self.drift_end - self.horizon
        return end - self.window, end


def plan_timeline(
    now: datetime,
    *,
    window_days: float,
    horizon_days: float,
    after_days: float,
    margin_days: float = 1.0,
    settle_days: float = 0.0,
) -> Timeline:
    """The acts, ending at the last UTC midnight at least an hour before ``now`` (no event from the future).

    The challenger's window starts ``settle_days`` plus ``margin_days`` after the onset.

    Anchored to a midnight rather than to ``now`` itself: the simulator's traffic depends on the UTC
    hour, so with the same seed every run replays the same traffic, shifted by whole days, and the
    challenger meets the same evidence (a demo whose outcome changed with the minute it started
    would not be reproducible).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if min(window_days, horizon_days, after_days, margin_days) <= 0:
        raise ValueError("window, horizon, after and margin must all be positive")
    if settle_days < 0:
        raise ValueError(f"settle_days must not be negative, not {settle_days}")
    span = timedelta(days=window_days + horizon_days + margin_days)
    end = (now.astimezone(UTC) - timedelta(hours=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    drift_end = end - timedelta(days=after_days)
    onset = drift_end - span - timedelta(days=settle_days)
    return Timeline(onset - span, onset, drift_end, end, timedelta(days=window_days), timedelta(days=horizon_days))
