"""Cut the endless simulated stream: after a number of transaction records and/or at an event time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from berg.simulator.events import SimulatedEvent

__all__ = ["bounded"]


def bounded(
    events: Iterable[SimulatedEvent], *, max_transactions: int | None = None, until: datetime | None = None
) -> Iterator[SimulatedEvent]:
    """The events up to a bound, in order.

    Args:
        events: a stream in event-time order, e.g. from :func:`~berg.simulator.generator.simulate`.
        max_transactions: stop after this many records on the transactions topic
            (valid and malformed together); ``None`` for no limit.
        until: stop before the first event at or after this event time; ``None`` for no limit.

    Labels due after the bound are not emitted: at the end of the run they are not known yet.
    With neither bound the stream is endless.
    """
    if max_transactions is not None and max_transactions < 0:
        raise ValueError(f"max_transactions must not be negative, got {max_transactions}")
    if max_transactions == 0:
        return
    seen = 0
    for event in events:
        if until is not None and event.event_time >= until:
            return
        yield event
        if event.kind != "label":
            seen += 1
            if max_transactions is not None and seen >= max_transactions:
                return
