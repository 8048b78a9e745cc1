"""Builders shared by the serving unit tests: transactions, V2 tensors, tiny registered models."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from berg.registry import Lineage, ModelRegistry, VersionMetadata
from berg_fraud.contracts import TransactionV1

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def transaction_fields(**overrides: Any) -> dict[str, Any]:
    """A valid transaction as JSON-ready fields; keyword overrides."""
    fields: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_time": NOW.isoformat(),
        "user_id": "user-00001",
        "merchant_id": "merchant-0001",
        "amount": 42.5,
        "currency": "EUR",
        "merchant_category": "5411",
        "channel": "card_present",
        "country": "DE",
    }
    fields.update(overrides)
    return fields


def transaction(**overrides: Any) -> TransactionV1:
    return TransactionV1.model_validate(transaction_fields(**overrides))


@dataclass
class Tensor:
    """A V2 input tensor as KServe's InferInput presents it (name, datatype, shape, as_numpy)."""

    name: str
    datatype: str
    data: list[Any]
    shape: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.shape:
            self.shape = [len(self.data)]

    def as_numpy(self) -> np.ndarray:
        dtype = {"BYTES": object, "INT64": np.int64, "BOOL": np.bool_}.get(self.datatype, np.float64)
        return np.array(self.data, dtype=dtype).reshape(self.shape)


def tensors(rows: Sequence[dict[str, Any]]) -> list[Tensor]:
    """The V2 tensors (one per field) of transactions given as fields."""
    names = list(rows[0])
    return [Tensor(name, "FP64" if name == "amount" else "BYTES", [row[name] for row in rows]) for name in names]


def tiny_booster(features: Sequence[str], *, seed: int = 0, depth: int = 2) -> Any:
    """A small XGBoost model over ``features``, trained in milliseconds on random data."""
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, len(features))).astype(np.float32)
    y = (x[:, 0] + rng.normal(scale=0.5, size=400) > 0.8).astype(np.float32)
    return xgb.train(
        {"objective": "binary:logistic", "max_depth": depth, "nthread": 1, "seed": seed},
        xgb.DMatrix(x, label=y, feature_names=list(features)),
        num_boost_round=5,
    )


def register(
    registry: ModelRegistry,
    folder: Path,
    features: Sequence[str],
    *,
    threshold: float = 0.5,
    seed: int = 0,
    model_bytes: bytes | None = None,
    params: dict[str, Any] | None = None,
) -> str:
    """Register a tiny model (or the given bytes) with its feature order and threshold; returns the version."""
    folder.mkdir(parents=True, exist_ok=True)
    if model_bytes is None:
        model_bytes = bytes(tiny_booster(features, seed=seed).save_raw(raw_format="ubj"))
    (folder / "model.bst").write_bytes(model_bytes)
    metadata = VersionMetadata(
        lineage=Lineage(
            data_start=datetime(2026, 1, 1, tzinfo=UTC),
            data_end=datetime(2026, 2, 1, tzinfo=UTC),
            feature_service="fraud_model_v1",
            pipeline_run_id="test",
            code_version="test",
        ),
        params={"features": list(features), "threshold": threshold} if params is None else params,
    )
    return registry.register("fraud", folder, metadata).version


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until it holds (the serving tests run alone too, without the repository's tests package)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.01)
