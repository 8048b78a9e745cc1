"""The seam a use case's simulator implements.

A use case brings its traffic (``UseCase.simulator``, a :class:`TrafficSimulator`:
scored events, their delayed labels and malformed records, in event-time order, each
with the truth behind it). The application (``berg_app.simulator``) bounds, paces,
produces and scores it; ``berg simulate`` and ``berg demo`` run it. See
``docs/simulator.md``.
"""

from berg.simulator.traffic import (
    MALFORMED_CLASS_HEADER,
    SCENARIO_HEADER,
    EventKind,
    EventTruth,
    RefusingStage,
    SimulatedEvent,
    TrafficPlan,
    TrafficSimulator,
)

__all__ = [
    "MALFORMED_CLASS_HEADER",
    "SCENARIO_HEADER",
    "EventKind",
    "EventTruth",
    "RefusingStage",
    "SimulatedEvent",
    "TrafficPlan",
    "TrafficSimulator",
]
