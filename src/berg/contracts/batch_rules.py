"""Batch rules: what a whole micro-batch of a stream must look like, declared by its use case.

A row can be well formed and still arrive in a batch that no healthy upstream sends: every
amount a thousand times too large, one user behind half the traffic, a channel gone. The
validation service judges each micro-batch of at least :attr:`BatchBounds.min_rows` rows on
the rows that passed every value rule, and quarantines the whole batch when one of these
rules fails. The rule kinds are generic; which columns and bounds apply is the use case's
data (its :class:`~berg.contracts.rules.ContractRules` subclass).

Pure: no I/O.

Example::

    MeanBetween("amount", 1.0, 50_000.0)
    ShareBetween("channel", "card_not_present", 0.02, 0.98, others=("card_present",))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "BatchBounds",
    "BatchRule",
    "Bounds",
    "MeanBetween",
    "MedianBetween",
    "QuantilesBetween",
    "Share",
    "ShareBetween",
    "ShareBounds",
    "TopValueShareAtMost",
]


def _ordered(bounds: tuple[float, float]) -> tuple[float, float]:
    low, high = bounds
    if low > high:
        raise ValueError(f"lower bound {low} is above upper bound {high}")
    return bounds


Bounds = Annotated[tuple[float, float], AfterValidator(_ordered)]
"""A ``(low, high)`` pair with ``low <= high``."""
Share = Annotated[float, Field(ge=0.0, le=1.0)]
"""A share of rows, from 0 to 1."""
ShareBounds = Annotated[tuple[Share, Share], AfterValidator(_ordered)]
"""A ``(low, high)`` pair of shares."""


class BatchBounds(BaseModel):
    """When batch rules run and the bounds every stream shares; a use case subclasses it for its own.

    Example::

        BatchBounds(min_rows=500)   # BERG_VALIDATION_RULES__BATCH__MIN_ROWS=500
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_rows: Annotated[int, Field(ge=1)] = 100
    """Batch-level rules run only on batches of at least this many rows; statistics of fewer are noise."""
    max_failed_row_share: Share = 0.5
    """At most this share of a batch's rows may fail a value rule."""
    max_null_share: Share = 0.25
    """At most this share of any column may be null."""


@dataclass(frozen=True)
class MeanBetween:
    """The mean of a numeric column lies in ``[low, high]``."""

    field: str
    low: float
    high: float


@dataclass(frozen=True)
class MedianBetween:
    """The median of a numeric column lies in ``[low, high]``."""

    field: str
    low: float
    high: float


@dataclass(frozen=True)
class QuantilesBetween:
    """Each quantile of a numeric column lies in its range: ``quantiles[i]`` in ``ranges[i]``."""

    field: str
    quantiles: tuple[float, ...]
    ranges: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.quantiles) != len(self.ranges):
            raise ValueError(f"{self.field}: {len(self.quantiles)} quantiles but {len(self.ranges)} ranges")


@dataclass(frozen=True)
class ShareBetween:
    """The share of rows whose column holds ``value`` lies in ``[low, high]``.

    ``others`` are the column's other known values: "at most ``high``" is judged as "at least
    ``1 - high`` hold one of the others", so both sides are the same in-set check (a value
    outside both is a value rule's business, not this one's).
    """

    field: str
    value: str
    low: float
    high: float
    others: tuple[str, ...]


@dataclass(frozen=True)
class TopValueShareAtMost:
    """No single value of the column holds more than ``at_most`` of the rows (one user is not the traffic)."""

    field: str
    at_most: float


BatchRule = MeanBetween | MedianBetween | QuantilesBetween | ShareBetween | TopValueShareAtMost
"""One batch rule; :meth:`~berg.contracts.rules.ContractRules.batch_rules` lists a stream's in order."""
