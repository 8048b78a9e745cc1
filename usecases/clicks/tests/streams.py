"""The clicks tests' shared plans: the dates, a small audience, and a stream cut at a time."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from berg.simulator.traffic import SimulatedEvent, TrafficPlan
from berg_clicks.simulator import ClicksSimulator

__all__ = ["END", "ONSET", "SMALL", "START", "stream"]

START = datetime(2026, 3, 2, tzinfo=UTC)
"""A Monday, midnight UTC."""
ONSET = START + timedelta(days=1)
END = START + timedelta(days=2)
SMALL = ClicksSimulator(viewers=400)
"""A small audience: about 2,400 impressions a day."""


def stream(simulator: ClicksSimulator, plan: TrafficPlan, until: datetime = END) -> list[SimulatedEvent]:
    """Every record of ``plan`` before ``until``."""
    return list(itertools.takewhile(lambda event: event.event_time < until, simulator.events(plan)))
