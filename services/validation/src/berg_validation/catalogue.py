"""The rules of each stream, as data: which expectation, on which column, with which arguments.

Both engines read this one catalogue: :mod:`berg_validation.suites` turns each
:class:`Rule` into a Great Expectations expectation, :mod:`berg_validation.pandas_rules`
evaluates the same rule with vectorised pandas. So the two agree on which rules
exist, on their names and on their order; whether they agree on what the rules
mean is what the cross-check test asks.

A rule's :attr:`Rule.name` is stable and short enough for a dead-letter reason or
a metric label: ``expect_column_values_to_be_between(total)``, with a
``[qualifier]`` where one expectation type is used twice on a column
(``expect_column_values_to_be_in_set(device)[mobile_min_share]``).

- **Row-level** rules (level ``row``) judge each row; a row that fails any of them is
  dead-lettered. Besides the structure rules (not null, of type, from the stream's
  contract), they are the use case's value rules (:mod:`berg.contracts.rules`), the one
  definition serving applies too, each turned into its expectation here.
- **Batch-level** rules judge the micro-batch as a whole, and run only on batches of at
  least :attr:`~berg.contracts.batch_rules.BatchBounds.min_rows` rows. The null
  rates (level ``batch``) look at every row. The share of rows that passed and the
  use case's batch rules (:mod:`berg.contracts.batch_rules`; level ``passed_rows``) look
  only at the rows that passed every row-level rule, so a few absurd rows that are
  dead-lettered anyway cannot move them. Any batch-level failure quarantines the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from berg.contracts.batch_rules import (
    BatchRule,
    MeanBetween,
    MedianBetween,
    QuantilesBetween,
    ShareBetween,
    TopValueShareAtMost,
)
from berg.contracts.rules import ContractRules, NotAfterClock, OneOf, PositiveAtMost, Unique, ValueRule
from berg.usecase import Stream
from berg_validation.frames import column_types

__all__ = [
    "MAX_EVENT_TIME",
    "MIN_PASSED_ROWS",
    "Catalogue",
    "Level",
    "Rule",
    "build_catalogue",
    "rule_name",
]

Level = Literal["row", "batch", "passed_rows"]
"""Which rows a rule looks at and what its failure means: see the module docstring."""

MAX_EVENT_TIME = "max_event_time"
"""Suite parameter: the latest acceptable event time of a batch, its ``now`` plus the allowed clock skew
(:meth:`~berg.contracts.rules.ContractRules.latest_event_time`)."""

MIN_PASSED_ROWS = "min_passed_rows"
"""Suite parameter: how many rows of a batch must pass every row-level rule (from its size and the bound)."""


@dataclass(frozen=True)
class Rule:
    """One expectation of a suite."""

    name: str
    """Stable name, used in verdicts, dead-letter reasons and metric labels."""
    expectation_type: str
    """The Great Expectations expectation type, e.g. ``expect_column_values_to_be_between``."""
    column: str | None
    """The column judged; None for a table-level rule."""
    kwargs: Mapping[str, Any]
    """Arguments besides ``column``; ``{"$PARAMETER": name}`` stands for the batch's value of a suite parameter."""
    level: Level


@dataclass(frozen=True)
class Catalogue:
    """The rules of one stream, row-level and batch-level, in evaluation order."""

    kind: str
    """The stream's name."""
    column_types: Mapping[str, str]
    """The frame's columns and their type names (:func:`berg_validation.frames.column_types`)."""
    rules: tuple[Rule, ...]
    min_rows_for_batch_rules: int
    max_failed_row_share: float

    def at(self, level: Level) -> tuple[Rule, ...]:
        """The rules of one level, in catalogue order."""
        return tuple(rule for rule in self.rules if rule.level == level)

    @property
    def passed_rows_columns(self) -> list[str]:
        """The columns the ``passed_rows`` rules read, in frame order."""
        used = {rule.column for rule in self.at("passed_rows")}
        return [column for column in self.column_types if column in used]

    def min_passed_rows(self, rows: int) -> int:
        """How many of ``rows`` must pass the row-level rules (the value of :data:`MIN_PASSED_ROWS`)."""
        return math.ceil(rows * (1.0 - self.max_failed_row_share) - 1e-9)


def rule_name(expectation_type: str, column: str, qualifier: str | None = None) -> str:
    """``expectation_type(column)``, or ``expectation_type(column)[qualifier]``.

    ``column`` is the subject: a column, or ``passed_rows`` for the table-level row count.
    """
    base = f"{expectation_type}({column})"
    return base if qualifier is None else f"{base}[{qualifier}]"


def _rule(expectation_type: str, column: str, level: Level, qualifier: str | None = None, **kwargs: Any) -> Rule:
    return Rule(
        name=rule_name(expectation_type, column, qualifier),
        expectation_type=expectation_type,
        column=column,
        kwargs=MappingProxyType(kwargs),
        level=level,
    )


def _structure_rules(types: Mapping[str, str]) -> list[Rule]:
    rules: list[Rule] = []
    for column, type_name in types.items():
        rules.append(_rule("expect_column_values_to_not_be_null", column, "row"))
        rules.append(_rule("expect_column_values_to_be_of_type", column, "row", type_=type_name))
    return rules


def _value_rule(rule: ValueRule) -> Rule:
    """The expectation that checks one value rule of :mod:`berg.contracts.rules`."""
    if isinstance(rule, PositiveAtMost):
        return _rule(
            "expect_column_values_to_be_between",
            rule.field,
            "row",
            min_value=0.0,
            strict_min=True,
            max_value=rule.at_most,
        )
    if isinstance(rule, NotAfterClock):
        # The batch's own clock reaches the suite as a parameter, so nothing is rebuilt per batch.
        return _rule("expect_column_values_to_be_between", rule.field, "row", max_value={"$PARAMETER": MAX_EVENT_TIME})
    if isinstance(rule, OneOf):
        return _rule("expect_column_values_to_be_in_set", rule.field, "row", value_set=list(rule.values))
    assert isinstance(rule, Unique)
    return _rule("expect_column_values_to_be_unique", rule.field, "row")


def _null_share_rules(types: Mapping[str, str], settings: ContractRules) -> list[Rule]:
    return [
        _rule(
            "expect_column_proportion_of_non_null_values_to_be_between",
            column,
            "batch",
            min_value=1.0 - settings.batch.max_null_share,
        )
        for column in types
    ]


def _passed_share_rule() -> Rule:
    # On the rows that passed, so the bound depends on the batch's size: a suite parameter.
    return Rule(
        name=rule_name("expect_table_row_count_to_be_between", "passed_rows"),
        expectation_type="expect_table_row_count_to_be_between",
        column=None,
        kwargs=MappingProxyType({"min_value": {"$PARAMETER": MIN_PASSED_ROWS}}),
        level="passed_rows",
    )


def _batch_rule(rule: BatchRule) -> list[Rule]:
    """The expectations that check one batch rule of :mod:`berg.contracts.batch_rules`."""
    if isinstance(rule, MeanBetween):
        return [
            _rule(
                "expect_column_mean_to_be_between", rule.field, "passed_rows", min_value=rule.low, max_value=rule.high
            )
        ]
    if isinstance(rule, MedianBetween):
        return [
            _rule(
                "expect_column_median_to_be_between", rule.field, "passed_rows", min_value=rule.low, max_value=rule.high
            )
        ]
    if isinstance(rule, QuantilesBetween):
        return [
            _rule(
                "expect_column_quantile_values_to_be_between",
                rule.field,
                "passed_rows",
                quantile_ranges={
                    "quantiles": list(rule.quantiles),
                    "value_ranges": [list(bounds) for bounds in rule.ranges],
                },
            )
        ]
    if isinstance(rule, ShareBetween):
        # "At least low" and "at most high" of the value, each as a `mostly` of GX's own in-set expectation.
        return [
            _rule(
                "expect_column_values_to_be_in_set",
                rule.field,
                "passed_rows",
                f"{rule.value}_min_share",
                value_set=[rule.value],
                mostly=rule.low,
            ),
            _rule(
                "expect_column_values_to_be_in_set",
                rule.field,
                "passed_rows",
                f"{rule.value}_max_share",
                value_set=list(rule.others),
                mostly=round(1.0 - rule.high, 12),
            ),
        ]
    assert isinstance(rule, TopValueShareAtMost)
    return [_rule("expect_column_top_value_share_to_be_between", rule.field, "passed_rows", max_value=rule.at_most)]


def build_catalogue(stream: Stream, settings: ContractRules) -> Catalogue:
    """The rules of ``stream`` under ``settings`` (the use case's rules)."""
    types = column_types(stream.contract)
    rules = [
        *_structure_rules(types),
        *(_value_rule(rule) for rule in settings.value_rules(stream.name)),
        *_null_share_rules(types, settings),
        _passed_share_rule(),
        *(expectation for rule in settings.batch_rules(stream.name) for expectation in _batch_rule(rule)),
    ]
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):  # a rules bug, not a data problem
        raise AssertionError(f"duplicate rule names in the {stream.name} catalogue: {names}")
    return Catalogue(
        kind=stream.name,
        column_types=types,
        rules=tuple(rules),
        min_rows_for_batch_rules=settings.batch.min_rows,
        max_failed_row_share=settings.batch.max_failed_row_share,
    )
