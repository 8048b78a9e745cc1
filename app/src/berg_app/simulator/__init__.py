"""What runs any use case's simulator (:class:`berg.simulator.TrafficSimulator`).

The application bounds the stream (:func:`bounded`), paces and produces it to Kafka
(:func:`produce_events`) and scores it against serving (:mod:`berg_app.simulator.scoring`);
``berg simulate`` and ``berg demo`` run it. See ``docs/simulator.md``.

Example:
    >>> plan = TrafficPlan(start=start, scenario=simulator.drift_scenario, onset=onset, seed=7)
    >>> counts = produce_events(kafka_settings, bounded(simulator.events(plan), max_scored=10_000))
"""

from berg_app.simulator.bounds import bounded
from berg_app.simulator.producer import ProductionCounts, produce_events, send_events

__all__ = ["ProductionCounts", "bounded", "produce_events", "send_events"]
