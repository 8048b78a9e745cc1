"""The platform's part of simulation: the seam a use case's simulator implements, and what runs any of them.

A use case brings its traffic (``UseCase.simulator``, a :class:`TrafficSimulator`:
scored events, their delayed labels and malformed records, in event-time order, each
with the truth behind it). The platform bounds the stream (:func:`bounded`), paces and
produces it to Kafka (:func:`produce_events`) and scores it against serving
(:mod:`berg.simulator.scoring`); ``berg simulate`` and ``berg demo`` run it. See
``docs/simulator.md``.

Example:
    >>> plan = TrafficPlan(start=start, scenario=simulator.drift_scenario, onset=onset, seed=7)
    >>> counts = produce_events(kafka_settings, bounded(simulator.events(plan), max_scored=10_000))
"""

from berg.simulator.bounds import bounded
from berg.simulator.producer import ProductionCounts, produce_events, send_events
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
    "ProductionCounts",
    "RefusingStage",
    "SimulatedEvent",
    "TrafficPlan",
    "TrafficSimulator",
    "bounded",
    "produce_events",
    "send_events",
]
