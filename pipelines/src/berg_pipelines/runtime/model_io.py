"""XGBoost models on disk as KServe's XGBoost server reads them: ``model.bst`` holding UBJSON.

``Booster.save_model`` and ``Booster(model_file=...)`` guess the format from the
extension and warn about ``.bst``; writing and reading the raw bytes says it.
"""

from __future__ import annotations

from pathlib import Path

import xgboost as xgb

__all__ = ["booster_from_bytes", "load_booster", "save_booster"]


def save_booster(booster: xgb.Booster, path: Path) -> None:
    path.write_bytes(bytes(booster.save_raw(raw_format="ubj")))


def load_booster(path: Path) -> xgb.Booster:
    return booster_from_bytes(path.read_bytes())


def booster_from_bytes(data: bytes) -> xgb.Booster:
    """A booster from a model file's bytes (UBJSON), e.g. as the registry's ``read_model_file`` returns them."""
    booster = xgb.Booster()
    booster.load_model(bytearray(data))
    return booster
