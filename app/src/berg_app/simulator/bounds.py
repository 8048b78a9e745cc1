"""Cut the endless simulated stream: after a number of scored records and/or at an event time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from berg.simulator.traffic import SimulatedEvent

__all__ = ["bounded"]


def bounded(
    events: Iterable[SimulatedEvent], *, max_scored: int | None = None, until: datetime | None = None
) -> Iterator[SimulatedEvent]:
    """The events up to a bound, in order.

    Args:
        events: a stream in event-time order, e.g. from :meth:`~berg.simulator.traffic.TrafficSimulator.events`.
        max_scored: stop after this many records on the scored stream's topic
            (valid and malformed together); ``None`` for no limit.
        until: stop before the first event at or after this event time; ``None`` for no limit.

    Labels due after the bound are not emitted: at the end of the run they are not known yet.
    With neither bound the stream is endless.
    """
    if max_scored is not None and max_scored < 0:
        raise ValueError(f"max_scored must not be negative, got {max_scored}")
    if max_scored == 0:
        return
    seen = 0
    for event in events:
        if until is not None and event.event_time >= until:
            return
        yield event
        if event.kind != "label":
            seen += 1
            if max_scored is not None and seen >= max_scored:
                return
