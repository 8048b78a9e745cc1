"""Streaming aggregations as data: windowed count, sum, mean, max, distinct and share over an entity key.

A use case declares what its streaming features are; the features service computes any
declaration with the same event-time semantics, lateness and replay guarantees
(``services/features``: ``berg_features.aggregates``), and its oracle tests check every
declared aggregate against a brute-force rescan.

Semantics: the row of an entity at event time ``T`` summarises that entity's accepted events
with event time in ``(T - window, T]`` for each aggregate's window, so it always includes the
event at ``T`` itself (a window is never empty, and a mean or share never divides by zero).

Pure: no I/O.

Example::

    view = AggregationView(
        name="user_order_aggregates",
        key="user_id",
        as_of="last_order_unix",
        aggregates=(
            WindowedAggregate("order_count_24h", "count", timedelta(hours=24)),
            WindowedAggregate("total_mean_7d", "mean", timedelta(days=7), field="total"),
            WindowedAggregate("mobile_share_7d", "share", timedelta(days=7), field="device", value="mobile"),
        ),
    )
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Literal

__all__ = ["AggregateFunction", "AggregationView", "WindowedAggregate"]

AggregateFunction = Literal["count", "sum", "mean", "max", "distinct", "share"]
"""``count`` events; ``sum``, ``mean``, ``max`` of a numeric field; ``distinct`` values of a field;
``share`` of events whose field equals ``value``."""

_NEEDS_A_NUMBER = frozenset({"sum", "mean", "max"})


@dataclass(frozen=True)
class WindowedAggregate:
    """One streaming feature: a function over one field of the entity's events in a trailing window."""

    name: str
    function: AggregateFunction
    window: timedelta
    field: str | None = None
    """The event's field it reads; None for ``count``."""
    value: str | None = None
    """For ``share``: the field's value whose share is taken."""
    description: str = ""
    """A sentence for the feature registry."""

    def __post_init__(self) -> None:
        if self.window <= timedelta(0):
            raise ValueError(f"{self.name}: the window must be positive, got {self.window}")
        if self.window % timedelta(microseconds=1):
            raise ValueError(f"{self.name}: the window must be a whole number of microseconds")
        if (self.function == "count") != (self.field is None):
            raise ValueError(f"{self.name}: count takes no field, every other function takes one")
        if (self.function == "share") != (self.value is not None):
            raise ValueError(f"{self.name}: share takes the value whose share it is, no other function takes one")

    @property
    def window_us(self) -> int:
        """The window in microseconds (event times are integer microseconds)."""
        return self.window // timedelta(microseconds=1)

    @property
    def kind(self) -> Literal["int", "float"]:
        """The feature's value kind: counts are integers, everything else a float."""
        return "int" if self.function in ("count", "distinct") else "float"

    @property
    def numeric(self) -> bool:
        """Whether it reads its field as a number."""
        return self.function in _NEEDS_A_NUMBER


@dataclass(frozen=True)
class AggregationView:
    """The streaming features of one entity: a feature view the features service keeps current.

    Each row also carries ``as_of``: the event time (Unix seconds) of the newest event it
    includes, the row's as-of time the leakage check compares with the prediction time.
    """

    name: str
    key: str
    """The event's field naming the entity (the Kafka key, so its events stay in order)."""
    as_of: str
    aggregates: tuple[WindowedAggregate, ...]

    def __post_init__(self) -> None:
        if not self.aggregates:
            raise ValueError(f"view {self.name!r} declares no aggregate")
        names = [aggregate.name for aggregate in self.aggregates]
        repeated = sorted({name for name in names if names.count(name) > 1} | ({self.as_of} & set(names)))
        if repeated:
            raise ValueError(f"view {self.name!r}: feature name(s) {repeated} declared twice")

    @property
    def fields(self) -> tuple[str, ...]:
        """The event fields the aggregates read, in order of first use."""
        return tuple(dict.fromkeys(a.field for a in self.aggregates if a.field is not None))

    @cached_property
    def numeric_fields(self) -> frozenset[str]:
        """The fields some aggregate reads as a number (computed once: every event is read through it)."""
        return frozenset(a.field for a in self.aggregates if a.field is not None and a.numeric)

    @property
    def longest_window_us(self) -> int:
        """The longest window, in microseconds: how much of an entity's history a row can need."""
        return max(aggregate.window_us for aggregate in self.aggregates)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The row's columns besides the key: every aggregate, then ``as_of``."""
        return (*(aggregate.name for aggregate in self.aggregates), self.as_of)
