"""Step 5, evaluate: challenger, baseline and champion on the same test window, as the card says.

Each model's operating threshold is chosen on the validation split by the card's
policy, then every metric is measured on the test split (the latest window).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from berg.problem.card import RENAMED_METRICS, ProblemCard
from berg.problem.metrics import Outcomes, average_precision, choose_threshold, outcomes_at, roc_auc
from berg_pipelines.runtime.frames import feature_matrix

__all__ = ["EvaluationReport", "ModelEvaluation", "Scorer", "booster_scorer", "evaluate_model"]

Scorer = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class ModelEvaluation:
    """One model on the test window."""

    name: str
    pr_auc: float
    roc_auc: float
    threshold: float
    precision: float
    recall: float
    expected_cost: float
    expected_cost_per_event: float
    confusion: dict[str, int]
    positive_amount_caught: float
    positive_amount_missed: float

    def metric(self, name: str) -> float:
        value: float = getattr(self, name)
        return value


@dataclass
class EvaluationReport:
    card: str
    test_rows: int
    test_positives: int
    challenger: ModelEvaluation
    baseline: ModelEvaluation
    champion: ModelEvaluation | None = None
    champion_version: str | None = None
    notes: list[str] = field(default_factory=list)
    review: list[dict[str, Any]] = field(default_factory=list)
    """Features for a person to review (:class:`berg.features.suspicion.Suspicion` as dicts: feature, kind,
    reason, value); a report written before the list existed reads with none."""
    frozen_holdout: dict[str, Any] | None = None
    """The challenger on the test rows with features frozen at the test window's start
    (:func:`berg_pipelines.runtime.holdout.frozen_holdout`); None for a dataset without them."""

    def write(self, path: Path) -> None:
        """Strict JSON: a metric that cannot be computed (NaN) is written as null."""
        path.write_text(json.dumps(_nulls(asdict(self)), indent=2, allow_nan=False))

    @classmethod
    def read(cls, path: Path) -> EvaluationReport:
        """The report at ``path``; one written before a metric's rename reads under the new name."""
        raw: dict[str, Any] = json.loads(path.read_text())
        for name in ("challenger", "baseline", "champion"):
            if raw.get(name) is not None:
                raw[name] = ModelEvaluation(**{RENAMED_METRICS.get(k, k): _nan(v) for k, v in raw[name].items()})
        return cls(**raw)


def _nulls(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nulls(item) for item in value]
    return value


def _nan(value: Any) -> Any:
    return float("nan") if value is None else value


def booster_scorer(booster: xgb.Booster, features: Sequence[str]) -> Scorer:
    """Scores from an XGBoost booster on the given feature columns (``inplace_predict`` on float32)."""

    def score(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(booster.inplace_predict(feature_matrix(frame, features)), dtype=np.float64)

    return score


def evaluate_model(
    name: str,
    scorer: Scorer,
    card: ProblemCard,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    amount: str,
    *,
    threshold: float | None = None,
) -> ModelEvaluation:
    """One model on the test window, at ``threshold`` (the champion's, as it runs in production)
    or at the one the card's policy picks on ``validation``."""
    label = card.target.column
    if threshold is None:
        threshold = choose_threshold(
            card.threshold, card.costs, validation[label].to_numpy(), scorer(validation), validation[amount].to_numpy()
        ).threshold
    scores = scorer(test)
    y = test[label].to_numpy()
    outcome: Outcomes = outcomes_at(card.costs, y, scores, test[amount].to_numpy(), threshold)
    return ModelEvaluation(
        name=name,
        pr_auc=average_precision(y, scores),
        roc_auc=roc_auc(y, scores),
        threshold=threshold,
        precision=outcome.precision,
        recall=outcome.recall,
        expected_cost=outcome.expected_cost,
        expected_cost_per_event=outcome.expected_cost_per_event,
        confusion={
            "true_positives": outcome.true_positives,
            "false_positives": outcome.false_positives,
            "true_negatives": outcome.true_negatives,
            "false_negatives": outcome.false_negatives,
        },
        positive_amount_caught=outcome.positive_amount_caught,
        positive_amount_missed=outcome.positive_amount_missed,
    )
