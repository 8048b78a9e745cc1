"""From a score to what happens to the payment (the problem card's operating point).

Below the model's threshold a transaction is approved; at or above it, it is
challenged (``review``: step-up authentication or an analyst), and at or above
``decline_at`` declined outright. The threshold belongs to the model version
(chosen on its validation window by the card's policy), so a hot swap moves it
with the model; ``decline_at`` is a business setting. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from berg.contracts.predictions import Decision

__all__ = ["DecisionPolicy"]


@dataclass(frozen=True)
class DecisionPolicy:
    """``approve`` below the threshold, ``review`` in ``[threshold, decline_at)``, ``decline`` from ``decline_at``.

    Example:
        >>> DecisionPolicy(decline_at=0.9).decide(0.5, threshold=0.3)
        'review'
    """

    decline_at: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 <= self.decline_at <= 1.0:
            raise ValueError(f"decline_at must be in [0, 1], got {self.decline_at}")

    def decide(self, score: float, threshold: float) -> Decision:
        """The decision for one score under the model's threshold."""
        if score < threshold:
            return "approve"
        if score >= max(threshold, self.decline_at):
            return "decline"
        return "review"  # also a NaN score: never approved, never declined without a person

    def decide_all(self, scores: list[float], threshold: float) -> list[Decision]:
        """The decisions for a batch of scores."""
        return [self.decide(score, threshold) for score in scores]
