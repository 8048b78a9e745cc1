"""The fraud case's data rules: what a transaction and a label must mean, and what a healthy batch looks like.

Row rules (validation dead-letters a row that breaks one; serving refuses a scoring request):

- a transaction's ``amount`` is above 0 and at most ``max_amount``;
- an ``event_time`` is no later than the checker's clock plus ``clock_skew_s``;
- a ``currency`` and a ``merchant_category`` are known ones, a ``channel`` or a label's
  ``source`` one of the contract's;
- an ``event_id`` appears once in a batch.

Batch rules on the transactions that passed (:class:`FraudBatchBounds`): the amount's mean,
median and 5th/95th percentiles, the share of card-not-present payments, and no user behind
more than half the batch.

Example::

    rules = FraudRules(clock_skew_s=60)   # BERG_VALIDATION_RULES__CLOCK_SKEW_S=60
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, get_args

from pydantic import AfterValidator, ConfigDict, Field

from berg.contracts.batch_rules import (
    BatchBounds,
    BatchRule,
    Bounds,
    MeanBetween,
    MedianBetween,
    QuantilesBetween,
    Share,
    ShareBetween,
    ShareBounds,
    TopValueShareAtMost,
)
from berg.contracts.rules import ContractRules, OneOf, PositiveAtMost, Unique, ValueRule
from berg_fraud.contracts import MAX_AMOUNT, Channel, LabelSource
from berg_fraud.reference import MERCHANT_CATEGORY_CODES

__all__ = ["DEFAULT_CURRENCIES", "FraudBatchBounds", "FraudRules"]

DEFAULT_CURRENCIES: frozenset[str] = frozenset(
    {"EUR", "USD", "GBP", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "JPY", "CAD", "AUD"}
)
"""ISO 4217 codes accepted by default."""


def _all_match(pattern: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(values: frozenset[str]) -> frozenset[str]:
        bad = sorted(value for value in values if not compiled.fullmatch(value))
        if bad:
            raise ValueError(f"values {bad} do not match {pattern}")
        return values

    return AfterValidator(check)


class FraudBatchBounds(BatchBounds):
    """Bounds of the transactions' batch rules: wide enough for normal traffic, tight enough for a broken upstream.

    Normal simulated traffic (log-normal amounts around 20, both channels, many
    users) with up to ~10% malformed rows stays well inside every bound.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount_mean: Bounds = (1.0, 50_000.0)
    """Mean amount of the rows that passed the value rules."""
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


class FraudRules(ContractRules):
    """The parameters of the fraud case's rules: clock skew, known sets, the largest amount, the batch bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    merchant_categories: Annotated[frozenset[str], Field(min_length=1), _all_match(r"[0-9]{4}")] = (
        MERCHANT_CATEGORY_CODES
    )
    """Known merchant category codes (ISO 18245, :mod:`berg_fraud.reference`); any other is refused."""
    currencies: Annotated[frozenset[str], Field(min_length=1), _all_match(r"[A-Z]{3}")] = DEFAULT_CURRENCIES
    """Accepted currency codes."""
    max_amount: Annotated[float, Field(gt=0.0, le=MAX_AMOUNT)] = MAX_AMOUNT
    """Largest accepted amount; never above the contract's :data:`~berg_fraud.contracts.MAX_AMOUNT`."""
    batch: FraudBatchBounds = FraudBatchBounds()
    """When batch rules run, and the transactions' bounds."""

    def declare_value_rules(self) -> Mapping[str, tuple[ValueRule, ...]]:
        return {
            "transactions": (
                PositiveAtMost("amount", self.max_amount),
                self.event_time_rule(),
                OneOf("currency", tuple(sorted(self.currencies))),
                OneOf("merchant_category", tuple(sorted(self.merchant_categories))),
                OneOf("channel", get_args(Channel)),
                Unique("event_id"),
            ),
            "labels": (
                self.event_time_rule(),
                OneOf("source", get_args(LabelSource)),
                Unique("event_id"),
            ),
        }

    def declare_batch_rules(self) -> Mapping[str, tuple[BatchRule, ...]]:
        bounds = self.batch
        return {
            "transactions": (
                MeanBetween("amount", *bounds.amount_mean),
                MedianBetween("amount", *bounds.amount_median),
                QuantilesBetween("amount", (0.05, 0.95), (bounds.amount_p05, bounds.amount_p95)),
                ShareBetween("channel", "card_not_present", *bounds.card_not_present_share, others=("card_present",)),
                TopValueShareAtMost("user_id", bounds.max_top_user_share),
            )
        }
