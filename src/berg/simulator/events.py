"""What the simulator emits: a Kafka record to produce, plus the truth behind it for tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from berg.kafka.records import Headers
from berg.simulator.planned import FraudPattern
from berg.simulator.scenarios import ScenarioName

__all__ = ["MALFORMED_CLASS_HEADER", "SCENARIO_HEADER", "EventKind", "EventTruth", "SimulatedEvent"]

SCENARIO_HEADER = "berg.sim.scenario"
"""Header on every simulated record: the scenario in force at its event time."""
MALFORMED_CLASS_HEADER = "berg.sim.malformed_class"
"""Header on every malformed record: its malformed class. Dead letters keep it."""

EventKind = Literal["transaction", "label", "malformed"]


@dataclass(frozen=True, slots=True)
class EventTruth:
    """What the generative process knows about one record, and a consumer cannot see."""

    scenario: ScenarioName
    """The scenario in force at the record's own event time."""
    transaction_id: uuid.UUID
    """The transaction this record is (``transaction``), judges (``label``) or was made from (``malformed``)."""
    is_fraud: bool
    """Whether that transaction is fraud."""
    pattern: FraudPattern | None = None
    """Its fraud pattern; ``None`` when it is legitimate."""
    malformed_class: str | None = None
    """The malformed class of a ``malformed`` record."""
    label_due: datetime | None = None
    """For a ``transaction``: when its label arrives; ``None`` when it never gets one."""


@dataclass(frozen=True, slots=True)
class SimulatedEvent:
    """One record for Kafka, in event-time order, with the truth behind it."""

    topic: str
    key: bytes
    """The user id, UTF-8."""
    value: bytes
    headers: Headers
    event_time: datetime
    kind: EventKind
    truth: EventTruth
