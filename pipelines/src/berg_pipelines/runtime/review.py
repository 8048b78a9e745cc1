"""Features to review, for the evaluation report: too good alone, or much more important than in the champion.

The dataset step's leakage check fails a run on a feature that alone separates the label
(ROC-AUC 0.99); :mod:`berg.features.suspicion` lists the weaker, partial cases for a person.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import xgboost as xgb

from berg.features.suspicion import importance_jumps, separable_features

__all__ = ["features_to_review", "total_gain"]


def total_gain(booster: xgb.Booster) -> dict[str, float]:
    """Each feature's total gain over the booster's trees (features it never split on are absent)."""
    return {name: float(value) for name, value in booster.get_score(importance_type="total_gain").items()}  # type: ignore[arg-type]


def features_to_review(
    train: pd.DataFrame,
    label_column: str,
    feature_columns: Sequence[str],
    challenger: xgb.Booster,
    champion: xgb.Booster | None,
) -> list[dict[str, Any]]:
    """The suspicions as JSON-ready dicts: single-feature AUCs on the training split, then importance jumps
    from the champion (None when no champion was compared)."""
    found = separable_features(train, label_column, feature_columns)
    if champion is not None:
        found += importance_jumps(total_gain(challenger), total_gain(champion))
    return [suspicion.as_dict() for suspicion in found]
