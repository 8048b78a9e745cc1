"""Step 3, train: XGBoost ``hist`` with early stopping on validation and class-imbalance weighting.

With a Dask scheduler address, the same training runs distributed with
``xgboost.dask`` on that cluster (the frames are split into Dask partitions);
otherwise in this process with ``nthread`` threads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from berg_pipelines.runtime.frames import feature_matrix

__all__ = ["TrainParams", "TrainResult", "class_weight", "train_model"]


@dataclass(frozen=True)
class TrainParams:
    max_depth: int = 5
    learning_rate: float = 0.1
    num_boost_round: int = 400
    early_stopping_rounds: int = 30
    min_child_weight: float = 1.0
    subsample: float = 0.9
    colsample_bytree: float = 0.9
    nthread: int = 0
    """0: the CPUs this process may use (its affinity and cgroup quota), not every core of the node."""
    seed: int = 7

    def booster_params(self, scale_pos_weight: float) -> dict[str, Any]:
        return {
            "objective": "binary:logistic",
            "eval_metric": ["aucpr", "logloss"],
            "tree_method": "hist",
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "scale_pos_weight": scale_pos_weight,
            "nthread": self.nthread or available_cpus(),
            "seed": self.seed,
        }


@dataclass
class TrainResult:
    booster: xgb.Booster
    best_iteration: int
    scale_pos_weight: float
    validation_aucpr: float
    params: dict[str, Any] = field(default_factory=dict)


def available_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a pod's CPU limit)."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, int(int(quota) / int(period))))


def class_weight(labels: np.ndarray) -> float:
    """``scale_pos_weight``: negatives over positives (positives are rare; each positive row counts that much more)."""
    positives = float(np.sum(labels == 1))
    negatives = float(np.sum(labels == 0))
    if positives == 0:
        raise ValueError("the training split holds no positive row: nothing to learn")
    return negatives / positives


def train_model(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    features: Sequence[str],
    label: str,
    params: TrainParams,
    *,
    dask_scheduler: str | None = None,
) -> TrainResult:
    """Train on ``train``, stop early on ``validation``'s PR-AUC."""
    y_train = train[label].to_numpy()
    weight = class_weight(y_train)
    booster_params = params.booster_params(weight)
    if dask_scheduler:
        return _train_dask(train, validation, features, label, params, booster_params, weight, dask_scheduler)
    dtrain = xgb.DMatrix(feature_matrix(train, features), label=y_train, feature_names=list(features))
    dvalid = xgb.DMatrix(
        feature_matrix(validation, features), label=validation[label].to_numpy(), feature_names=list(features)
    )
    history: dict[str, Any] = {}
    booster = xgb.train(
        booster_params,
        dtrain,
        num_boost_round=params.num_boost_round,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=params.early_stopping_rounds or None,
        evals_result=history,
        verbose_eval=False,
    )
    return _result(booster, weight, history, booster_params)


def _result(booster: xgb.Booster, weight: float, history: dict[str, Any], params: dict[str, Any]) -> TrainResult:
    # Without early stopping (early_stopping_rounds=0) XGBoost sets no best iteration: the last one is it.
    rounds = len(history["validation"]["aucpr"])
    best = int(booster.best_iteration) if "best_iteration" in booster.attributes() else rounds - 1
    aucpr = float(history["validation"]["aucpr"][best])
    # Keep only the trees up to the best iteration: what is saved is what was validated.
    trimmed = booster[: best + 1]
    return TrainResult(trimmed, best, weight, aucpr, params)


def _train_dask(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    features: Sequence[str],
    label: str,
    params: TrainParams,
    booster_params: dict[str, Any],
    weight: float,
    scheduler: str,
) -> TrainResult:
    import dask.dataframe
    import distributed
    from xgboost import dask as dxgb

    # dask ships no type information for these two entry points.
    connect: Any = distributed.Client
    from_pandas: Any = dask.dataframe.from_pandas
    with connect(scheduler) as client:
        partitions = max(1, len(client.scheduler_info()["workers"]))

        def to_dask(frame: pd.DataFrame) -> tuple[Any, Any]:
            x = pd.DataFrame(feature_matrix(frame, features), columns=list(features))
            y = frame[label].reset_index(drop=True).astype("int64")
            return from_pandas(x, npartitions=partitions), from_pandas(y, npartitions=partitions)

        x_train, y_train = to_dask(train)
        x_valid, y_valid = to_dask(validation)
        dtrain = dxgb.DaskDMatrix(client, x_train, y_train)
        dvalid = dxgb.DaskDMatrix(client, x_valid, y_valid)
        output = dxgb.train(
            client,
            booster_params,
            dtrain,
            num_boost_round=params.num_boost_round,
            evals=[(dvalid, "validation")],
            early_stopping_rounds=params.early_stopping_rounds or None,
            verbose_eval=False,
        )
    booster: xgb.Booster = output["booster"]
    booster.feature_names = list(features)
    return _result(booster, weight, output["history"], booster_params)
