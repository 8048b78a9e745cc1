"""Value rules: what a well-formed event must also mean, defined once for every engine that checks it.

A contract (a use case's pydantic model) fixes structure: fields, JSON types, finiteness,
string bounds. Value rules fix values: a number above 0 and at most a bound, a time no
later than the checker's clock plus a skew (producers' clocks drift; the clock is the
checker's own, passed in as ``now``), a text from a known set, an id once per batch.

A use case declares its streams' rules by subclassing :class:`ContractRules`: its fields
are the rules' parameters (and the batch bounds, :mod:`berg.contracts.batch_rules`), read
from each service's settings (``BERG_VALIDATION_RULES__*``, ``BERG_SERVING_RULES__*``), and
:meth:`ContractRules.declare_value_rules` says which rule applies to which field of which
stream. Two engines apply them, both from this one definition: the validation service turns
each rule into a Great Expectations expectation and dead-letters the rows that break one;
serving checks every event of a scoring request and answers 400 naming the field. So serving
scores only events validation would let through.

Pure: no I/O, no clock of its own.

Example::

    rules = ContractRules()
    problems = violations(rules.value_rules("orders"), order, now=datetime.now(UTC))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from berg.contracts.batch_rules import BatchBounds, BatchRule

__all__ = [
    "ContractRules",
    "NotAfterClock",
    "OneOf",
    "PositiveAtMost",
    "Unique",
    "ValueRule",
    "Violation",
    "duplicated",
    "json_schema_with_rules",
    "violations",
]


@dataclass(frozen=True)
class PositiveAtMost:
    """A number above 0 and at most ``at_most`` (an amount, a duration, a count of something that happened)."""

    field: str
    at_most: float

    def problem(self, value: float) -> str | None:
        """What is wrong with ``value``, or None."""
        if 0.0 < value <= self.at_most:
            return None
        return f"must be above 0 and at most {self.at_most:.15g}, got {value!r}"


@dataclass(frozen=True)
class NotAfterClock:
    """A time no later than the checker's clock plus ``skew``."""

    field: str
    skew: timedelta

    def latest(self, now: datetime) -> datetime:
        """The latest acceptable time for a checker whose clock reads ``now`` (aware)."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        return now + self.skew

    def problem(self, value: datetime, now: datetime) -> str | None:
        """What is wrong with ``value`` at ``now``, or None."""
        latest = self.latest(now)
        if value <= latest:
            return None
        return (
            f"{value.isoformat()} is in the future: more than {self.skew.total_seconds():g}s ahead of "
            f"the clock (the latest accepted now is {latest.isoformat()})"
        )


@dataclass(frozen=True)
class OneOf:
    """A text value from a known set."""

    field: str
    values: tuple[str, ...]

    def problem(self, value: str) -> str | None:
        """What is wrong with ``value``, or None."""
        if value in self.values:
            return None
        shown = ", ".join(self.values[:30]) + (", ..." if len(self.values) > 30 else "")
        return f"{value!r} is not one of the known values ({shown})"


@dataclass(frozen=True)
class Unique:
    """A value that appears once in a batch."""

    field: str


ValueRule = PositiveAtMost | NotAfterClock | OneOf | Unique
"""One value rule; :meth:`ContractRules.value_rules` lists a stream's in order."""


class ContractRules(BaseModel):
    """The parameters of a use case's rules, and which rule applies where; the base holds what every stream shares.

    Each service that applies the rules nests the use case's subclass in its settings (``rules``).
    A subclass adds its parameters as fields and overrides :meth:`declare_value_rules` and
    :meth:`declare_batch_rules`; a stream it does not declare gets :meth:`common_value_rules`.

    Example::

        class OrderRules(ContractRules):
            max_total: float = 10_000.0

            def declare_value_rules(self) -> Mapping[str, tuple[ValueRule, ...]]:
                return {"orders": (PositiveAtMost("total", self.max_total), *self.common_value_rules())}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    clock_skew_s: Annotated[float, Field(ge=0.0, le=86_400.0)] = 300.0
    """How far ahead of the checker's clock an event time may be (producers' clocks drift)."""
    batch: BatchBounds = BatchBounds()
    """When batch rules run, and their bounds."""

    @property
    def clock_skew(self) -> timedelta:
        """:attr:`clock_skew_s` as a timedelta."""
        return timedelta(seconds=self.clock_skew_s)

    def latest_event_time(self, now: datetime) -> datetime:
        """The latest event time accepted by a checker whose clock reads ``now`` (aware)."""
        return NotAfterClock("event_time", self.clock_skew).latest(now)

    def event_time_rule(self) -> NotAfterClock:
        """Every event's ``event_time`` is no later than the checker's clock plus the skew."""
        return NotAfterClock("event_time", self.clock_skew)

    def common_value_rules(self) -> tuple[ValueRule, ...]:
        """What every Berg event must mean: an event time not in the future, an ``event_id`` once per batch."""
        return (self.event_time_rule(), Unique("event_id"))

    def declare_value_rules(self) -> Mapping[str, tuple[ValueRule, ...]]:
        """The value rules of each stream the use case declares, by stream name, in evaluation order."""
        return {}

    def declare_batch_rules(self) -> Mapping[str, tuple[BatchRule, ...]]:
        """The batch rules of each stream that has some, by stream name, in evaluation order."""
        return {}

    def value_rules(self, stream: str) -> tuple[ValueRule, ...]:
        """The value rules of ``stream``, in evaluation order."""
        declared = self._value_rules.get(stream)
        return self.common_value_rules() if declared is None else declared

    def batch_rules(self, stream: str) -> tuple[BatchRule, ...]:
        """The batch rules of ``stream`` (none unless declared), in evaluation order."""
        return self._batch_rules.get(stream, ())

    @cached_property
    def _value_rules(self) -> Mapping[str, tuple[ValueRule, ...]]:
        # Built once: serving checks every event of every request against them.
        return MappingProxyType(dict(self.declare_value_rules()))

    @cached_property
    def _batch_rules(self) -> Mapping[str, tuple[BatchRule, ...]]:
        return MappingProxyType(dict(self.declare_batch_rules()))


@dataclass(frozen=True)
class Violation:
    """One broken rule: the field and what is wrong with its value."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def violations(rules: Sequence[ValueRule], event: BaseModel, now: datetime) -> list[Violation]:
    """The rules ``event`` breaks at ``now`` (the checker's clock, aware), in rule order.

    :class:`Unique` is a property of a batch, not of one event: see :func:`duplicated`.
    """
    found: list[Violation] = []
    for rule in rules:
        if isinstance(rule, Unique):
            continue
        value = getattr(event, rule.field)
        problem = rule.problem(value, now) if isinstance(rule, NotAfterClock) else rule.problem(value)
        if problem is not None:
            found.append(Violation(rule.field, problem))
    return found


def duplicated(rules: Sequence[ValueRule], events: Sequence[BaseModel]) -> dict[int, Violation]:
    """The positions of ``events`` that break a :class:`Unique` rule (every copy), with the violation."""
    found: dict[int, Violation] = {}
    for rule in rules:
        if not isinstance(rule, Unique):
            continue
        values = [getattr(event, rule.field) for event in events]
        counts = Counter(values)
        for position, value in enumerate(values):
            if counts[value] > 1 and position not in found:
                found[position] = Violation(rule.field, f"{value} appears {counts[value]} times in the batch")
    return found


def json_schema_with_rules(contract: type[BaseModel], rules: Sequence[ValueRule]) -> dict[str, Any]:
    """``contract``'s JSON Schema with the value rules a schema can say.

    Bounds become ``exclusiveMinimum``/``maximum``, known sets ``enum``; the clock and
    uniqueness rules go into the description.
    """
    schema = contract.model_json_schema()
    properties: Mapping[str, dict[str, Any]] = schema["properties"]
    notes: list[str] = []
    for rule in rules:
        if isinstance(rule, PositiveAtMost):
            properties[rule.field].update(exclusiveMinimum=0, maximum=rule.at_most)
        elif isinstance(rule, OneOf):
            properties[rule.field]["enum"] = list(rule.values)
        elif isinstance(rule, NotAfterClock):
            notes.append(f"{rule.field} at most {rule.skew.total_seconds():g}s ahead of the server's clock")
        else:
            notes.append(f"{rule.field} unique within a request")
    schema["description"] = f"{schema.get('description', '').strip()} Value rules: {'; '.join(notes)}.".strip()
    return schema
