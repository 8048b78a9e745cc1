"""Reading and writing the frames that pass between steps, and which columns are features."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DatasetInfo", "feature_matrix", "read_frame", "write_frame"]


@dataclass(frozen=True)
class DatasetInfo:
    """What ``build_dataset`` decided, carried to every later step (``info.json`` beside the splits)."""

    label_column: str
    amount_column: str
    feature_columns: tuple[str, ...]
    feature_service: str
    window_start: str
    window_end: str
    split_times: tuple[str, str]
    """Validation starts at the first, test at the second (ISO timestamps)."""
    rows: dict[str, int]
    positives: dict[str, int]
    recompute: dict[str, Any] = field(default_factory=dict)
    """The recompute check's account (:meth:`berg.features.recompute.RecomputeResult.as_dict`): rows sampled,
    values compared per view, mismatches (0, or the step failed), views not recomputed and why."""
    frozen_test: dict[str, Any] = field(default_factory=dict)
    """The time-shifted holdout (empty: a dataset built without one): ``file`` (``test_frozen.parquet``), the test
    split's rows in its order with every stored view joined at ``frozen_at`` (the test window's start, strictly
    before it) instead of each row's own time, request columns and the time column as in the test split;
    ``rows``; ``of_split`` (``test``)."""

    def write(self, directory: Path) -> None:
        (directory / "info.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, directory: Path) -> DatasetInfo:
        raw = json.loads((directory / "info.json").read_text())
        raw["feature_columns"] = tuple(raw["feature_columns"])
        raw["split_times"] = tuple(raw["split_times"])
        return cls(**raw)


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def read_frame(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def feature_matrix(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The model's input: float32, NaN for missing (XGBoost learns where missing values go)."""
    matrix: np.ndarray = frame[list(columns)].astype("float64").to_numpy(dtype=np.float32, na_value=np.nan)
    return matrix
