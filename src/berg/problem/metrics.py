"""The metrics the problem card names, in numpy: ranking quality, outcomes at a threshold, cost.

Shared by the pipeline's evaluation and the monitoring exporter, so a PR-AUC or an
expected cost means the same in a training report and on a dashboard. ``y`` is
0/1 (1: the positive class), ``score`` the predicted probability of it, ``amount``
the event's money (a missed positive costs a share of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from berg.problem.card import Costs, ThresholdPolicy

__all__ = [
    "Outcomes",
    "average_precision",
    "calibration_error",
    "choose_threshold",
    "expected_cost",
    "outcomes_at",
    "roc_auc",
    "roc_curve",
]


def _arrays(y: ArrayLike, score: ArrayLike) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    labels = np.asarray(y).astype(np.int8)
    scores = np.asarray(score, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(f"labels and scores must be 1-d and equally long, got {labels.shape} and {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return labels, scores


def roc_auc(y: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve (ties count one half); NaN when only one class is present."""
    labels, scores = _arrays(y, score)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties (1-based).
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def average_precision(y: ArrayLike, score: ArrayLike) -> float:
    """PR-AUC as average precision (the step-wise sum, as scikit-learn computes it); NaN without positives."""
    labels, scores = _arrays(y, score)
    positives = int(labels.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # One point per distinct threshold: the last index of each run of equal scores.
    distinct = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    true_positives = np.cumsum(sorted_labels)[distinct]
    predicted = distinct + 1
    precision = true_positives / predicted
    recall = true_positives / positives
    recall_steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_steps * precision))


def roc_curve(y: ArrayLike, score: ArrayLike) -> tuple[list[float], list[float], list[float]]:
    """False positive rates, true positive rates and thresholds, one point per distinct score."""
    labels, scores = _arrays(y, score)
    positives = max(int(labels.sum()), 1)
    negatives = max(len(labels) - int(labels.sum()), 1)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tps = np.cumsum(sorted_labels)[distinct]
    fps = (distinct + 1) - tps
    fpr = np.r_[0.0, fps / negatives]
    tpr = np.r_[0.0, tps / positives]
    thresholds = np.r_[1.0, sorted_scores[distinct]]
    return fpr.tolist(), tpr.tolist(), thresholds.tolist()


@dataclass(frozen=True)
class Outcomes:
    """The confusion matrix at one threshold (score >= threshold means flagged), with the costs of the card."""

    threshold: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int
    expected_cost: float
    positive_amount_caught: float
    positive_amount_missed: float

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else float("nan")

    @property
    def recall(self) -> float:
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else float("nan")

    @property
    def events(self) -> int:
        """How many scored events the outcomes count."""
        return self.true_positives + self.false_positives + self.true_negatives + self.false_negatives

    @property
    def expected_cost_per_event(self) -> float:
        return self.expected_cost / self.events if self.events else float("nan")


def expected_cost(costs: Costs, y: ArrayLike, flagged: ArrayLike, amount: ArrayLike) -> float:
    """Total cost of the decisions ``flagged`` (bool) under the card's costs."""
    labels = np.asarray(y).astype(bool)
    decisions = np.asarray(flagged).astype(bool)
    amounts = np.asarray(amount, dtype=np.float64)
    missed = labels & ~decisions
    return float(
        costs.false_positive * np.sum(~labels & decisions)
        + costs.true_positive * np.sum(labels & decisions)
        + np.sum(costs.false_negative_fixed + costs.false_negative_amount_share * amounts[missed])
    )


def outcomes_at(costs: Costs, y: ArrayLike, score: ArrayLike, amount: ArrayLike, threshold: float) -> Outcomes:
    """Confusion matrix, cost and the positives' amounts caught and missed at ``threshold``."""
    labels, scores = _arrays(y, score)
    amounts = np.asarray(amount, dtype=np.float64)
    flagged = scores >= threshold
    positive = labels == 1
    return Outcomes(
        threshold=float(threshold),
        true_positives=int(np.sum(positive & flagged)),
        false_positives=int(np.sum(~positive & flagged)),
        true_negatives=int(np.sum(~positive & ~flagged)),
        false_negatives=int(np.sum(positive & ~flagged)),
        expected_cost=expected_cost(costs, labels, flagged, amounts),
        positive_amount_caught=float(amounts[positive & flagged].sum()),
        positive_amount_missed=float(amounts[positive & ~flagged].sum()),
    )


def choose_threshold(
    policy: ThresholdPolicy, costs: Costs, y: ArrayLike, score: ArrayLike, amount: ArrayLike
) -> Outcomes:
    """The operating point the card's policy picks on these (validation) scores.

    ``min_expected_cost``: among the distinct scores as thresholds (plus "flag
    nothing"), the lowest expected cost with precision at least ``min_precision``;
    "flag nothing" always qualifies. ``fixed``: the card's threshold.
    """
    labels, scores = _arrays(y, score)
    amounts = np.asarray(amount, dtype=np.float64)
    if policy.policy == "fixed":
        assert policy.fixed is not None
        return outcomes_at(costs, labels, scores, amounts, policy.fixed)
    # Every distinct score as a threshold at once: sort descending, accumulate.
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels, sorted_amounts = scores[order], labels[order], amounts[order]
    distinct = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tp = np.cumsum(sorted_labels)[distinct]
    fp = (distinct + 1) - tp
    caught = np.cumsum(sorted_amounts * sorted_labels)[distinct]
    positives = int(labels.sum())
    positive_amount = float(amounts[labels == 1].sum())
    cost = (
        costs.false_positive * fp
        + costs.true_positive * tp
        + costs.false_negative_fixed * (positives - tp)
        + costs.false_negative_amount_share * (positive_amount - caught)
    )
    allowed = tp / (distinct + 1) >= policy.min_precision
    flag_nothing = costs.false_negative_fixed * positives + costs.false_negative_amount_share * positive_amount
    if not allowed.any() or cost[allowed].min() >= flag_nothing:
        return outcomes_at(costs, labels, scores, amounts, float(np.nextafter(scores.max(initial=1.0), np.inf)))
    best = np.flatnonzero(allowed)[np.argmin(cost[allowed])]
    return outcomes_at(costs, labels, scores, amounts, float(sorted_scores[distinct[best]]))


def calibration_error(y: ArrayLike, score: ArrayLike, bins: int = 10) -> float:
    """Expected calibration error: the mean |observed rate - mean score| over equal-width score bins, weighted."""
    labels, scores = _arrays(y, score)
    if len(labels) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            total += members.sum() * abs(labels[members].mean() - scores[members].mean())
    return float(total / len(labels))
