"""A real XGBoost booster through the registry: what serving loads predicts what training saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xgboost

from berg.registry import MODEL_FILE, ModelRegistry, VersionMetadata

pytestmark = pytest.mark.unit


def test_a_registered_booster_loads_back_with_the_same_predictions(tmp_path: Path, metadata: VersionMetadata) -> None:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(200, 5))
    labels = (features[:, 0] + 0.5 * features[:, 1] + rng.normal(scale=0.3, size=200) > 0).astype(int)
    train = xgboost.DMatrix(features, label=labels)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3}, train, num_boost_round=10)
    out = tmp_path / "out"
    out.mkdir()
    # UBJSON bytes under the name KServe's xgbserver looks for (save_model("model.bst") warns that it guesses).
    (out / MODEL_FILE).write_bytes(bytes(booster.save_raw(raw_format="ubj")))
    registry = ModelRegistry(tmp_path / "registry")

    version = registry.register("fraud", out, metadata)
    # What xgbserver does: Booster(model_file=<the .bst file in the storageUri folder>).
    with pytest.warns(UserWarning, match="Unknown file format: `bst`. Using UBJSON"):
        loaded = xgboost.Booster(model_file=str(registry.local_path("fraud", version.version) / MODEL_FILE))

    expected = booster.predict(xgboost.DMatrix(features))
    np.testing.assert_array_equal(loaded.predict(xgboost.DMatrix(features)), expected)
