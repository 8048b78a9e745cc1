"""When labels arrive: chargebacks days after a fraud, manual reviews hours after some legitimate payments.

A fraud is charged back (``LabelV1(is_fraud=True, source="chargeback")``)
after a lognormal delay, clipped to a window; a share of fraud is never
labelled. A small share of legitimate payments gets a ``manual_review`` label
(``is_fraud=False``) after a short delay. Each decision is per transaction.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["LabelPolicy", "chargeback_delay_s", "review_delay_s"]

_DAY_S = 86_400.0
_HOUR_S = 3_600.0


@dataclass(frozen=True, slots=True)
class LabelPolicy:
    """How often and how late labels arrive."""

    chargeback_median_days: float = 4.0
    """Median delay from a fraud to its chargeback."""
    chargeback_sigma: float = 0.8
    """Sigma of the lognormal chargeback delay."""
    chargeback_min_days: float = 1.0
    chargeback_max_days: float = 60.0
    unlabelled_fraud_share: float = 0.2
    """Share of fraudulent transactions that are never charged back."""
    manual_review_share: float = 0.004
    """Share of legitimate transactions that get a ``manual_review`` label."""
    review_median_hours: float = 6.0
    review_sigma: float = 0.7
    review_min_hours: float = 0.25
    review_max_hours: float = 72.0

    def __post_init__(self) -> None:
        for name in ("unlabelled_fraud_share", "manual_review_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if not 0 < self.chargeback_min_days <= self.chargeback_max_days:
            raise ValueError("chargeback delays need 0 < chargeback_min_days <= chargeback_max_days")
        if not 0 < self.review_min_hours <= self.review_max_hours:
            raise ValueError("review delays need 0 < review_min_hours <= review_max_hours")


def chargeback_delay_s(rng: random.Random, policy: LabelPolicy, multiplier: float = 1.0) -> float | None:
    """Seconds from a fraud to its chargeback, or ``None`` when it is never labelled.

    Args:
        rng: the labels' random source; two draws per call, whatever the outcome.
        policy: the delays and the unlabelled share.
        multiplier: scales the median (the ``label_delay_change`` scenario); the clip window stays.
    """
    labelled = rng.random() >= policy.unlabelled_fraud_share
    days = rng.lognormvariate(math.log(policy.chargeback_median_days * multiplier), policy.chargeback_sigma)
    if not labelled:
        return None
    return min(max(days, policy.chargeback_min_days), policy.chargeback_max_days) * _DAY_S


def review_delay_s(rng: random.Random, policy: LabelPolicy) -> float | None:
    """Seconds from a legitimate payment to its manual review, or ``None`` when it is not reviewed."""
    if rng.random() >= policy.manual_review_share:
        return None
    hours = rng.lognormvariate(math.log(policy.review_median_hours), policy.review_sigma)
    return min(max(hours, policy.review_min_hours), policy.review_max_hours) * _HOUR_S
