"""The fraud case's traffic: synthetic card transactions from a documented generative process.

Users with spending profiles pay merchants; fraud comes in distinct patterns;
chargebacks arrive days later in event time and some fraud is never labelled;
scenarios change the process from an onset on; malformed records come in named
classes with the stage expected to refuse each. The stream is reproducible by
seed and carries the truth of every record, so tests can plant drift and know
the right answer. See ``docs/simulator.md``.

:class:`FraudSimulator` is what the fraud descriptor hands the platform (``UseCase.simulator``).

Example:
    >>> config = SimulationConfig(start=start, scenario=make_scenario("covariate_shift", onset), seed=7)
    >>> events = bounded(simulate(config), max_scored=10_000)
"""

from berg_fraud.simulator.fraud_simulator import DEFAULT_CARD_HOLDERS, DEFAULT_MERCHANTS, FraudSimulator
from berg_fraud.simulator.generator import SimulationConfig, Simulator, simulate
from berg_fraud.simulator.labels import LabelPolicy
from berg_fraud.simulator.malformed import MALFORMED_CLASS_NAMES, MALFORMED_CLASSES, MalformedClass, MalformedOptions
from berg_fraud.simulator.patterns import FRAUD_PATTERNS, FraudPattern
from berg_fraud.simulator.profiles import KNOWN_MERCHANT_CATEGORIES, MERCHANT_CATEGORY_SPECS
from berg_fraud.simulator.scenarios import SCENARIO_NAMES, ProcessParams, Scenario, ScenarioName, make_scenario

__all__ = [
    "DEFAULT_CARD_HOLDERS",
    "DEFAULT_MERCHANTS",
    "FRAUD_PATTERNS",
    "KNOWN_MERCHANT_CATEGORIES",
    "MALFORMED_CLASSES",
    "MALFORMED_CLASS_NAMES",
    "MERCHANT_CATEGORY_SPECS",
    "SCENARIO_NAMES",
    "FraudPattern",
    "FraudSimulator",
    "LabelPolicy",
    "MalformedClass",
    "MalformedOptions",
    "ProcessParams",
    "Scenario",
    "ScenarioName",
    "SimulationConfig",
    "Simulator",
    "make_scenario",
    "simulate",
]
