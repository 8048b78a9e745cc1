"""What a correct answer is, computed in the test: the online features and the registry's model, no server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from berg.features.store import open_store
from berg.registry import ModelRegistry
from berg_fraud.contracts import TransactionV1
from berg_serving.champion import load_champion
from berg_serving.decisions import DecisionPolicy
from berg_serving.features import FeatureFrame
from berg_serving.online import FeastOnlineFeatures
from tests.fraud_serving import ASSEMBLER
from tests.integration.serving.conftest import MODEL, ServingWorld

__all__ = ["expected_scores", "infer_request", "online_frame", "v2_tensors"]


def expected_scores(
    world: ServingWorld, registry: Path, rows: Sequence[dict[str, Any]], version: str = "v0001"
) -> tuple[list[float], list[str]]:
    """Scores and decisions of ``version`` for the transactions, from the same store and model file."""
    frame = online_frame(world, rows)
    champion = load_champion(ModelRegistry(registry), MODEL, version)
    scores = champion.predict(frame.matrix(champion.features)).tolist()
    return scores, list(DecisionPolicy().decide_all(scores, champion.threshold))


def online_frame(world: ServingWorld, rows: Sequence[dict[str, Any]]) -> FeatureFrame:
    """The transactions' features as serving assembles them, from the world's online store."""
    transactions = [TransactionV1.model_validate(row) for row in rows]
    online = FeastOnlineFeatures(open_store(world.world.store_config), ASSEMBLER.online_reads, threads=0)
    try:
        return ASSEMBLER.assemble(transactions, online.fetch(ASSEMBLER.entity_rows(transactions)))
    finally:
        asyncio.run(online.close())


def v2_tensors(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, np.ndarray]]:
    """The V2 layout of a scoring request: (name, datatype, values) per field."""
    tensors = []
    for name in rows[0]:
        if name == "amount":
            tensors.append((name, "FP64", np.array([row[name] for row in rows], dtype=np.float64)))
        else:
            tensors.append((name, "BYTES", np.array([row[name].encode() for row in rows], dtype=np.object_)))
    return tensors


def infer_request(rows: Sequence[dict[str, Any]], *, binary: bool) -> Any:
    """The scoring request as KServe's ``InferRequest`` (raw tensors when ``binary``)."""
    from kserve import InferInput, InferRequest

    inputs = []
    for name, datatype, values in v2_tensors(rows):
        tensor = InferInput(name, [len(values)], datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return InferRequest(model_name=MODEL, infer_inputs=inputs, request_id=str(uuid.uuid4()))
