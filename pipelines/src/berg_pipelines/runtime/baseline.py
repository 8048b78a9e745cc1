"""Step 4, baseline: the simplest model the problem card names, trained on the same split.

``prior``: every row gets the training split's positive rate. ``logistic_regression``:
scikit-learn's logistic regression on the card's features (missing values imputed
with the training median, standardised). Saved as JSON, not a pickle: the numbers
are the model, and anything can read them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from berg.problem.card import BaselineSpec

__all__ = ["BaselineModel", "train_baseline"]


@dataclass(frozen=True)
class BaselineModel:
    kind: str
    features: tuple[str, ...]
    prior: float
    medians: tuple[float, ...] = ()
    means: tuple[float, ...] = ()
    scales: tuple[float, ...] = ()
    coefficients: tuple[float, ...] = ()
    intercept: float = 0.0

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The probability of the positive class for each row."""
        if self.kind == "prior":
            return np.full(len(frame), self.prior)
        x = self._standardised(frame)
        scores: np.ndarray = 1.0 / (1.0 + np.exp(-(x @ np.asarray(self.coefficients) + self.intercept)))
        return scores

    def _standardised(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame[list(self.features)].astype("float64").to_numpy(na_value=np.nan)
        x = np.where(np.isnan(x), np.asarray(self.medians), x)
        standardised: np.ndarray = (x - np.asarray(self.means)) / np.asarray(self.scales)
        return standardised

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> BaselineModel:
        raw: dict[str, Any] = json.loads(path.read_text())
        values: dict[str, Any] = {key: tuple(v) if isinstance(v, list) else v for key, v in raw.items()}
        return cls(**values)


def train_baseline(spec: BaselineSpec, train: pd.DataFrame, label: str) -> BaselineModel:
    y = train[label].to_numpy()
    prior = float(y.mean())
    if spec.kind == "prior":
        return BaselineModel("prior", (), prior)
    x = train[list(spec.features)].astype("float64").to_numpy(na_value=np.nan)
    medians = np.nan_to_num(np.nanmedian(x, axis=0), nan=0.0)
    x = np.where(np.isnan(x), medians, x)
    means, scales = x.mean(axis=0), x.std(axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    model = LogisticRegression(class_weight="balanced", max_iter=1000)
    model.fit((x - means) / scales, y)
    return BaselineModel(
        "logistic_regression",
        tuple(spec.features),
        prior,
        tuple(medians.tolist()),
        tuple(means.tolist()),
        tuple(scales.tolist()),
        tuple(model.coef_[0].tolist()),
        float(model.intercept_[0]),
    )
