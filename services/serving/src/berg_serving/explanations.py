"""Reason codes: why the model scored an event as it did, feature by feature.

XGBoost's TreeSHAP (``Booster.predict(DMatrix, pred_contribs=True)``) splits each
row's margin (log-odds) into one contribution per feature plus a bias: the
contributions and the bias sum to the margin, and the score is the logistic of the
margin. The reason codes of an event are its ``top_k`` features ranked by their
contribution toward the positive class (the largest first; ties by name), each
with its value for this request (``None`` where it was missing: NaN) and its
contribution. Pure: the contributions come in as arrays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from berg_serving.predictions import Scores

__all__ = [
    "DEFAULT_TOP_K",
    "TOP_K_HEADER",
    "Contributions",
    "Explained",
    "FeatureReason",
    "TopKError",
    "check_top_k",
    "explanation_response",
    "feature_reasons",
    "rank_reasons",
    "top_k_of",
]

DEFAULT_TOP_K = 3
"""Reason codes per event when the request does not say."""

TOP_K_HEADER = "x-berg-explain-top-k"
"""How the explain routes hand the request's ``top_k`` query parameter to the model: KServe's
``Model.explain`` receives the payload and the headers only. The routes set it, overriding a client's."""


class TopKError(ValueError):
    """A ``top_k`` the request may not ask for; the message says what is allowed."""


@dataclass(frozen=True)
class Contributions:
    """TreeSHAP of a batch, in the model's feature order (log-odds)."""

    features: tuple[str, ...]
    per_feature: np.ndarray
    """Shape ``[rows, len(features)]``: each feature's contribution to each row's margin."""
    bias: np.ndarray
    """Shape ``[rows]``: the expected margin, the part no feature explains."""

    def __post_init__(self) -> None:
        rows = len(self.bias)
        if self.per_feature.shape != (rows, len(self.features)):
            raise ValueError(
                f"contributions of shape {self.per_feature.shape} for {rows} rows of {len(self.features)} features"
            )

    @property
    def margin(self) -> np.ndarray:
        """Per row: the contributions plus the bias, the model's raw output (log-odds)."""
        margin: np.ndarray = self.per_feature.sum(axis=1) + self.bias
        return margin


@dataclass(frozen=True)
class Explained:
    """A batch scored and explained by one model version."""

    scores: Scores
    contributions: Contributions


@dataclass(frozen=True)
class FeatureReason:
    """One feature's part in one event's score."""

    feature: str
    value: float | None
    """The feature's value for this request; ``None`` where it was missing."""
    contribution: float
    """Its contribution to the margin, in log-odds (positive: toward the positive class)."""

    def as_json(self) -> dict[str, Any]:
        return {"feature": self.feature, "value": self.value, "contribution": self.contribution}


def check_top_k(top_k: int, feature_count: int) -> int:
    """``top_k`` when it is between 1 and the model's feature count.

    Raises:
        TopKError: it is not.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= feature_count:
        raise TopKError(f"top_k must be an integer from 1 to {feature_count} (the model's features), got {top_k!r}")
    return top_k


def top_k_of(headers: Mapping[str, str] | None) -> int:
    """The ``top_k`` a request asks for (:data:`TOP_K_HEADER`), or :data:`DEFAULT_TOP_K`.

    Raises:
        TopKError: it is not a positive integer (the upper bound is the model's: :func:`check_top_k`).
    """
    text = (headers or {}).get(TOP_K_HEADER)
    if text is None:
        return DEFAULT_TOP_K
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise TopKError(f"top_k must be a positive integer, got {text!r}")
    return int(text)


def _value(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def feature_reasons(
    features: Sequence[str], values: Sequence[float], contributions: Sequence[float]
) -> list[FeatureReason]:
    """One event's features with their values and contributions, in the model's order (NaN values: ``None``)."""
    if not len(features) == len(values) == len(contributions):
        raise ValueError(f"{len(features)} features, {len(values)} values and {len(contributions)} contributions")
    return [
        FeatureReason(name, _value(float(value)), float(contribution))
        for name, value, contribution in zip(features, values, contributions, strict=True)
    ]


def rank_reasons(reasons: Sequence[FeatureReason], top_k: int) -> list[FeatureReason]:
    """The ``top_k`` reasons that pushed the score up most: by contribution, largest first, ties by name.

    Raises:
        TopKError: ``top_k`` is not between 1 and the number of reasons.
    """
    check_top_k(top_k, len(reasons))
    return sorted(reasons, key=lambda reason: (-reason.contribution, reason.feature))[:top_k]


def explanation_response(
    explained: Explained,
    values: Mapping[str, np.ndarray],
    event_ids: Sequence[str],
    *,
    model_name: str,
    top_k: int,
) -> dict[str, Any]:
    """The explain answer, one entry per event (the same JSON for V1 and V2).

    Args:
        explained: scores and contributions of the batch.
        values: the request's feature columns (float64, NaN for missing), as the model was given them.
        event_ids: the scored events' ids, in order.
        model_name: the endpoint's model name.
        top_k: reason codes per event.

    Raises:
        TopKError: ``top_k`` is not between 1 and the model's feature count.
    """
    contributions = explained.contributions
    scores = explained.scores
    check_top_k(top_k, len(contributions.features))
    margins = contributions.margin
    explanations = []
    for row, event_id in enumerate(event_ids):
        reasons = feature_reasons(
            contributions.features,
            [float(values[name][row]) for name in contributions.features],
            contributions.per_feature[row].tolist(),
        )
        explanations.append(
            {
                "scored_event_id": event_id,
                "score": scores.scores[row],
                "decision": scores.decisions[row],
                "threshold": scores.threshold,
                "margin": float(margins[row]),
                "bias": float(contributions.bias[row]),
                "reasons": [reason.as_json() for reason in rank_reasons(reasons, top_k)],
                "contributions": [reason.as_json() for reason in reasons],
            }
        )
    return {
        "model_name": model_name,
        "model_version": scores.model_version,
        "top_k": top_k,
        "explanations": explanations,
    }
