"""The reference profile stored with a model version: what its inputs and scores looked like.

Monitoring compares live traffic with it: PSI over the profile's bins, and the KS
statistic against its sample. Per feature: quantile bin edges from the training
split, the share of training rows in each bin (plus a missing-value share), and a
bounded sample of values. For the score: the same over the challenger's scores on
the test window (the most recent data the model was judged on).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["distribution_profile", "reference_profile"]

BINS = 10
SAMPLE = 1000


def distribution_profile(values: np.ndarray, *, seed: int = 7) -> dict[str, Any]:
    """Bin edges (inner quantiles), shares per bin and missing, and a sample, of one variable."""
    values = np.asarray(values, dtype=np.float64)
    present = values[np.isfinite(values)]
    missing_share = 1.0 - len(present) / len(values) if len(values) else 0.0
    if len(present) == 0:
        return {"edges": [], "shares": [], "missing_share": missing_share, "sample": [], "count": 0}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    rng = np.random.default_rng(seed)
    sample = rng.choice(present, size=min(SAMPLE, len(present)), replace=False)
    return {
        "edges": edges.tolist(),
        "shares": (counts / len(values)).tolist(),
        "missing_share": missing_share,
        "sample": np.sort(sample).tolist(),
        "count": len(values),
    }


def reference_profile(
    train: pd.DataFrame, features: Sequence[str], scores: np.ndarray, *, watch_only: Collection[str] = ()
) -> dict[str, Any]:
    """Every feature's and the scores' distribution profile; ``watch_only`` features are marked
    ``retrain_on_drift: false`` (monitoring measures their drift, which starts no retraining run)."""
    return {
        "features": {
            name: {
                **distribution_profile(train[name].astype("float64").to_numpy(na_value=np.nan)),
                "retrain_on_drift": name not in watch_only,
            }
            for name in features
        },
        "prediction": distribution_profile(scores),
    }
