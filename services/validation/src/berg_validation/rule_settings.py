"""The values the validation rules are parameterised by: skew, known sets, batch bounds.

The row rules' parameters (clock skew, known categories and currencies, the largest
amount) are the core library's :class:`~berg.contracts.rules.ValueRules`, the one
definition serving applies too; this module adds the batch-level bounds. A plain
pydantic model (``extra="forbid"``, frozen), built once at start-up and passed in;
the service's settings nest it, e.g. ``BERG_VALIDATION_RULES__CLOCK_SKEW_S=120`` or
``BERG_VALIDATION_RULES__BATCH__AMOUNT_MEAN='[1, 20000]'``.

Example::

    rules = RuleSettings(merchant_categories=simulator.MERCHANT_CATEGORIES)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from berg.contracts.reference import MERCHANT_CATEGORY_CODES
from berg.contracts.rules import DEFAULT_CURRENCIES, ValueRules

__all__ = [
    "DEFAULT_CURRENCIES",
    "DEFAULT_MERCHANT_CATEGORIES",
    "BatchBounds",
    "RuleSettings",
]

DEFAULT_MERCHANT_CATEGORIES: frozenset[str] = MERCHANT_CATEGORY_CODES
"""The ISO 18245 merchant category codes Berg knows (:mod:`berg.contracts.reference`)."""


def _ordered(bounds: tuple[float, float]) -> tuple[float, float]:
    low, high = bounds
    if low > high:
        raise ValueError(f"lower bound {low} is above upper bound {high}")
    return bounds


Bounds = Annotated[tuple[float, float], AfterValidator(_ordered)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
ShareBounds = Annotated[tuple[Share, Share], AfterValidator(_ordered)]


class BatchBounds(BaseModel):
    """Bounds of the batch-level expectations: wide enough for normal traffic, tight enough for a broken upstream.

    Normal simulated traffic (log-normal amounts around 20, both channels, many
    users) with up to ~10% malformed rows stays well inside every bound.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_rows: Annotated[int, Field(ge=1)] = 100
    """Batch-level expectations run only on batches of at least this many rows; statistics of fewer are noise."""
    max_failed_row_share: Share = 0.5
    """At most this share of a batch's rows may fail a row-level expectation."""
    max_null_share: Share = 0.25
    """At most this share of any column may be null."""
    amount_mean: Bounds = (1.0, 50_000.0)
    """Mean amount of the rows that passed the row-level expectations."""
    amount_median: Bounds = (0.5, 10_000.0)
    """Median amount of the rows that passed."""
    amount_p05: Bounds = (0.01, 1_000.0)
    """5th percentile of amount of the rows that passed."""
    amount_p95: Bounds = (1.0, 100_000.0)
    """95th percentile of amount of the rows that passed."""
    card_not_present_share: ShareBounds = (0.02, 0.98)
    """Share of ``card_not_present`` among the rows that passed."""
    max_top_user_share: Share = 0.5
    """At most this share of the rows that passed may belong to one user."""


class RuleSettings(ValueRules):
    """Everything the rules of both contracts depend on, validated once: the value rules' parameters
    (clock skew, known sets, largest amount) and the batch-level bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: BatchBounds = BatchBounds()
    """Batch-level bounds."""
