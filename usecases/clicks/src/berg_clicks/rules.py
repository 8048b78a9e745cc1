"""The clicks case's data rules: what an impression must mean, and what a healthy batch of them looks like.

Row rules (validation dead-letters a row that breaks one; serving refuses a scoring request):

- an impression's ``bid`` is above 0 and at most ``max_bid``;
- its ``placement`` is a known one;
- an ``event_time`` is no later than the checker's clock plus ``clock_skew_s``, an ``event_id``
  once per batch (both streams).

Batch rules on the impressions that passed (:class:`ClicksBatchBounds`): the bid's mean and 95th
percentile, the share of mobile impressions, and no campaign behind most of the batch.

Example::

    rules = ClicksRules(max_bid=20)   # BERG_VALIDATION_RULES__MAX_BID=20
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ConfigDict

from berg.contracts.batch_rules import (
    BatchBounds,
    BatchRule,
    Bounds,
    MeanBetween,
    QuantilesBetween,
    Share,
    ShareBetween,
    ShareBounds,
    TopValueShareAtMost,
)
from berg.contracts.rules import ContractRules, OneOf, PositiveAtMost, ValueRule

__all__ = ["PLACEMENTS", "ClicksBatchBounds", "ClicksRules"]

PLACEMENTS: frozenset[str] = frozenset({"feed", "sidebar", "search"})
"""Where on a page an ad may be shown, by default."""


class ClicksBatchBounds(BatchBounds):
    """Bounds of the impressions' batch rules: wide enough for normal traffic, tight enough for a broken ad server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bid_mean: Bounds = (0.01, 5.0)
    """Mean bid of the impressions that passed."""
    bid_p95: Bounds = (0.05, 20.0)
    """95th percentile of the bid of the impressions that passed."""
    mobile_share: ShareBounds = (0.05, 0.95)
    """Share of ``mobile`` impressions among those that passed."""
    max_campaign_share: Share = 0.8
    """At most this share of the impressions that passed may belong to one campaign."""


class ClicksRules(ContractRules):
    """The parameters of the clicks case's rules: the largest bid, the known placements, the batch bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bid: float = 50.0
    """Largest accepted bid; a larger one is a broken ad server, not an advertiser."""
    placements: frozenset[str] = PLACEMENTS
    """Known placements; any other is refused."""
    batch: ClicksBatchBounds = ClicksBatchBounds()
    """When batch rules run, and the impressions' bounds."""

    def declare_value_rules(self) -> Mapping[str, tuple[ValueRule, ...]]:
        return {
            "impressions": (
                PositiveAtMost("bid", self.max_bid),
                OneOf("placement", tuple(sorted(self.placements))),
                *self.common_value_rules(),
            ),
            "clicks": self.common_value_rules(),
        }

    def declare_batch_rules(self) -> Mapping[str, tuple[BatchRule, ...]]:
        bounds = self.batch
        return {
            "impressions": (
                MeanBetween("bid", *bounds.bid_mean),
                QuantilesBetween("bid", (0.95,), (bounds.bid_p95,)),
                ShareBetween("device", "mobile", *bounds.mobile_share, others=("desktop",)),
                TopValueShareAtMost("campaign_id", bounds.max_campaign_share),
            )
        }
