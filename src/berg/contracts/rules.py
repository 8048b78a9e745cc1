"""The value rules of the event contracts: what a well-formed event must also mean, defined once.

A contract (:mod:`berg.contracts.events`) fixes structure: fields, JSON types, finiteness,
string bounds. These rules fix values, under :class:`ValueRules`' parameters:

- a transaction's ``amount`` is above 0 and at most ``max_amount``;
- an ``event_time`` is no later than the checker's clock plus ``clock_skew_s`` (producers'
  clocks drift; the clock is the checker's own, passed in as ``now``);
- a ``currency`` and a ``merchant_category`` are known ones, a ``channel`` or a label's
  ``source`` one of the contract's;
- an ``event_id`` appears once in a batch (a micro-batch, a scoring request).

Two engines apply them, both from this one definition: the validation service turns each
rule into a Great Expectations expectation and dead-letters the rows that break one;
serving checks every transaction of a scoring request and answers 400 naming the field.
So serving scores only transactions validation would let through.

Pure: no I/O, no clock of its own.

Example::

    rules = ValueRules()
    problems = transaction_violations(rules, transaction, now=datetime.now(UTC))
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from berg.contracts.events import MAX_AMOUNT, Channel, LabelSource, LabelV1, TransactionV1
from berg.contracts.reference import MERCHANT_CATEGORY_CODES

__all__ = [
    "DEFAULT_CURRENCIES",
    "NotAfterClock",
    "OneOf",
    "PositiveAtMost",
    "Unique",
    "ValueRule",
    "ValueRules",
    "Violation",
    "duplicated",
    "label_violations",
    "transaction_json_schema",
    "transaction_violations",
]

DEFAULT_CURRENCIES: frozenset[str] = frozenset(
    {"EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "JPY", "CAD", "AUD"}
)
"""ISO 4217 codes accepted by default."""


@dataclass(frozen=True)
class PositiveAtMost:
    """A number above 0 (a payment moves money) and at most ``at_most``."""

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
"""One value rule; :meth:`ValueRules.for_transactions` and :meth:`ValueRules.for_labels` list them in order."""


def _all_match(pattern: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(values: frozenset[str]) -> frozenset[str]:
        bad = sorted(value for value in values if not compiled.fullmatch(value))
        if bad:
            raise ValueError(f"values {bad} do not match {pattern}")
        return values

    return AfterValidator(check)


class ValueRules(BaseModel):
    """The parameters of the value rules; each service that applies them nests one in its settings.

    Example::

        rules = ValueRules(clock_skew_s=60)   # BERG_SERVING_RULES__CLOCK_SKEW_S=60
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    clock_skew_s: Annotated[float, Field(ge=0.0, le=86_400.0)] = 300.0
    """How far ahead of the checker's clock an event time may be (producers' clocks drift)."""
    merchant_categories: Annotated[frozenset[str], Field(min_length=1), _all_match(r"[0-9]{4}")] = (
        MERCHANT_CATEGORY_CODES
    )
    """Known merchant category codes; any other is refused."""
    currencies: Annotated[frozenset[str], Field(min_length=1), _all_match(r"[A-Z]{3}")] = DEFAULT_CURRENCIES
    """Accepted currency codes."""
    max_amount: Annotated[float, Field(gt=0.0, le=MAX_AMOUNT)] = MAX_AMOUNT
    """Largest accepted amount; never above the contract's :data:`~berg.contracts.events.MAX_AMOUNT`."""

    @property
    def clock_skew(self) -> timedelta:
        """:attr:`clock_skew_s` as a timedelta."""
        return timedelta(seconds=self.clock_skew_s)

    def latest_event_time(self, now: datetime) -> datetime:
        """The latest event time accepted by a checker whose clock reads ``now`` (aware)."""
        return NotAfterClock("event_time", self.clock_skew).latest(now)

    def for_transactions(self) -> tuple[ValueRule, ...]:
        """The rules of a :class:`~berg.contracts.events.TransactionV1`, in evaluation order."""
        return self._transaction_rules

    def for_labels(self) -> tuple[ValueRule, ...]:
        """The rules of a :class:`~berg.contracts.events.LabelV1`, in evaluation order."""
        return self._label_rules

    @cached_property
    def _transaction_rules(self) -> tuple[ValueRule, ...]:
        # Built once: serving checks every transaction of every request against them.
        return (
            PositiveAtMost("amount", self.max_amount),
            NotAfterClock("event_time", self.clock_skew),
            OneOf("currency", tuple(sorted(self.currencies))),
            OneOf("merchant_category", tuple(sorted(self.merchant_categories))),
            OneOf("channel", get_args(Channel)),
            Unique("event_id"),
        )

    @cached_property
    def _label_rules(self) -> tuple[ValueRule, ...]:
        return (
            NotAfterClock("event_time", self.clock_skew),
            OneOf("source", get_args(LabelSource)),
            Unique("event_id"),
        )


@dataclass(frozen=True)
class Violation:
    """One broken rule: the field and what is wrong with its value."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _violations(rules: Sequence[ValueRule], event: BaseModel, now: datetime) -> list[Violation]:
    found: list[Violation] = []
    for rule in rules:
        if isinstance(rule, Unique):
            continue  # a property of the batch: duplicated()
        value = getattr(event, rule.field)
        problem = rule.problem(value, now) if isinstance(rule, NotAfterClock) else rule.problem(value)
        if problem is not None:
            found.append(Violation(rule.field, problem))
    return found


def transaction_violations(rules: ValueRules, transaction: TransactionV1, now: datetime) -> list[Violation]:
    """The row rules ``transaction`` breaks at ``now`` (the checker's clock, aware), in rule order."""
    return _violations(rules.for_transactions(), transaction, now)


def label_violations(rules: ValueRules, label: LabelV1, now: datetime) -> list[Violation]:
    """The row rules ``label`` breaks at ``now`` (the checker's clock, aware), in rule order."""
    return _violations(rules.for_labels(), label, now)


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


def transaction_json_schema(rules: ValueRules) -> dict[str, Any]:
    """:class:`~berg.contracts.events.TransactionV1`'s JSON Schema with the value rules a schema can say.

    Bounds become ``exclusiveMinimum``/``maximum``, known sets ``enum``; the clock and
    uniqueness rules go into the description.
    """
    schema = TransactionV1.model_json_schema()
    properties: Mapping[str, dict[str, Any]] = schema["properties"]
    notes: list[str] = []
    for rule in rules.for_transactions():
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
