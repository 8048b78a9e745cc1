"""The event simulator: synthetic card-transaction traffic from a documented generative process.

Users with spending profiles pay merchants; fraud comes in distinct patterns;
chargebacks arrive days later in event time and some fraud is never labelled;
scenarios change the process from an onset on; malformed records come in named
classes with the stage expected to refuse each. The stream is reproducible by
seed and carries the truth of every record, so tests can plant drift and know
the right answer. See ``docs/simulator.md``.

Example:
    >>> config = SimulationConfig(start=start, scenario=make_scenario("covariate_shift", onset), seed=7)
    >>> counts = produce_events(kafka_settings, bounded(simulate(config), max_transactions=10_000))
"""

from berg.simulator.bounds import bounded
from berg.simulator.events import MALFORMED_CLASS_HEADER, SCENARIO_HEADER, EventKind, EventTruth, SimulatedEvent
from berg.simulator.generator import SimulationConfig, Simulator, simulate
from berg.simulator.labels import LabelPolicy
from berg.simulator.malformed import (
    MALFORMED_CLASS_NAMES,
    MALFORMED_CLASSES,
    MalformedClass,
    MalformedOptions,
    RefusingStage,
    classes_refused_by,
)
from berg.simulator.patterns import FRAUD_PATTERNS, FraudPattern
from berg.simulator.producer import ProductionCounts, produce_events, send_events
from berg.simulator.profiles import KNOWN_MERCHANT_CATEGORIES, MERCHANT_CATEGORY_SPECS
from berg.simulator.scenarios import SCENARIO_NAMES, ProcessParams, Scenario, ScenarioName, make_scenario

__all__ = [
    "FRAUD_PATTERNS",
    "KNOWN_MERCHANT_CATEGORIES",
    "MALFORMED_CLASSES",
    "MALFORMED_CLASS_HEADER",
    "MALFORMED_CLASS_NAMES",
    "MERCHANT_CATEGORY_SPECS",
    "SCENARIO_HEADER",
    "SCENARIO_NAMES",
    "EventKind",
    "EventTruth",
    "FraudPattern",
    "LabelPolicy",
    "MalformedClass",
    "MalformedOptions",
    "ProcessParams",
    "ProductionCounts",
    "RefusingStage",
    "Scenario",
    "ScenarioName",
    "SimulatedEvent",
    "SimulationConfig",
    "Simulator",
    "bounded",
    "classes_refused_by",
    "make_scenario",
    "produce_events",
    "send_events",
    "simulate",
]
