"""KServe's standard shape: a transformer (Feast lookup) in front of a predictor (XGBoost), two processes.

A transformer reaches the predictor (``predictor_host``) over gRPC, V2 REST or V1; both speak
V1 and V2 to clients. The predictor alone takes named feature columns. Its
answers equal the registry model on the online features; a predictor that is gone
makes the transformer answer 503, not a wrong score.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

from berg.features.store import open_store
from berg_fraud.contracts import TransactionV1
from berg_serving.online import FeastOnlineFeatures
from tests.fraud_serving import ASSEMBLER
from tests.helpers import wait_for
from tests.integration.serving.conftest import MODEL, ServingProcess, ServingWorld
from tests.integration.serving.scoring import expected_scores

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def registry(serving_world: ServingWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serving_world.registry(tmp_path_factory.mktemp("standard") / "registry")


PROTOCOLS = ("grpc-v2", "v2", "v1")


@dataclass(frozen=True)
class Standard:
    predictor: ServingProcess
    transformers: dict[str, ServingProcess]
    """One transformer per protocol of the hop to the predictor."""


@pytest.fixture(scope="module")
def standard(serving_world: ServingWorld, registry: Path, start_server: Any) -> Standard:
    predictor = start_server("predictor", serving_world, registry, wait=False)
    transformers = {
        protocol: start_server(
            "transformer",
            serving_world,
            registry,
            wait=False,
            PREDICTOR__HOST=predictor.grpc_url if protocol == "grpc-v2" else predictor.url.removeprefix("http://"),
            PREDICTOR__PROTOCOL=protocol,
        )
        for protocol in PROTOCOLS
    }
    for server in (predictor, *transformers.values()):
        server.wait_ready()
    return Standard(predictor, transformers)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_transformer_answers_v1_and_v2_through_the_predictor(
    standard: Standard, serving_world: ServingWorld, registry: Path, protocol: str
) -> None:
    transformer = standard.transformers[protocol]
    rows = serving_world.transactions(5, seed=21, unknown=2)
    scores, decisions = expected_scores(serving_world, registry, rows)
    response = httpx.post(f"{transformer.url}/v1/models/{MODEL}:predict", json={"instances": rows}, timeout=30)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    np.testing.assert_allclose([p["score"] for p in predictions], scores, rtol=1e-6)
    assert [p["decision"] for p in predictions] == decisions
    assert [p["default_features_used"] for p in predictions] == [False] * 5 + [True] * 2
    assert {p["model_version"] for p in predictions} == {"v0001"}
    v2 = {
        "inputs": [
            {
                "name": name,
                "datatype": "FP64" if name == "amount" else "BYTES",
                "shape": [len(rows)],
                "data": [row[name] for row in rows],
            }
            for name in rows[0]
        ]
    }
    response = httpx.post(f"{transformer.url}/v2/models/{MODEL}/infer", json=v2, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "v0001"
    score = next(output for output in body["outputs"] if output["name"] == "score")
    np.testing.assert_allclose(score["data"], scores, rtol=1e-6)
    assert transformer.metric("berg_serving_latency_seconds_count", {"stage": "lookup"}) >= 2


def _feature_columns(serving_world: ServingWorld, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    transactions = [TransactionV1.model_validate(row) for row in rows]
    online = FeastOnlineFeatures(open_store(serving_world.world.store_config), ASSEMBLER.online_reads, threads=0)
    try:
        return dict(ASSEMBLER.assemble(transactions, online.fetch(ASSEMBLER.entity_rows(transactions))).columns)
    finally:
        asyncio.run(online.close())


def test_the_predictor_takes_named_features_with_kserve_clients(
    standard: Standard, serving_world: ServingWorld, registry: Path
) -> None:
    predictor = standard.predictor
    rows = serving_world.transactions(3, seed=22, unknown=1)
    scores, decisions = expected_scores(serving_world, registry, rows)
    columns = _feature_columns(serving_world, rows)
    instances = [
        {name: (None if np.isnan(values[i]) else float(values[i])) for name, values in columns.items()}
        for i in range(len(rows))
    ]
    inputs = []
    for name, values in columns.items():
        tensor = InferInput(name, [len(values)], "FP32")
        tensor.set_data_from_numpy(values.astype(np.float32), binary_data=True)
        inputs.append(tensor)

    async def call() -> tuple[Any, Any, Any]:
        v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0))
        v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        grpc_client = InferenceGRPCClient(predictor.grpc_url, retries=0)
        try:
            return (
                await v1.infer(predictor.url, {"instances": instances}, model_name=MODEL),
                await v2.infer(predictor.url, InferRequest(MODEL, inputs, request_id="a"), model_name=MODEL),
                await grpc_client.infer(InferRequest(MODEL, inputs, request_id="b")),
            )
        finally:
            await v1.close()
            await v2.close()
            await grpc_client.close()

    v1_answer, v2_answer, grpc_answer = asyncio.run(call())
    np.testing.assert_allclose([p["score"] for p in v1_answer["predictions"]], scores, rtol=1e-6)
    assert [p["decision"] for p in v1_answer["predictions"]] == decisions
    assert (v1_answer["model_version"], v1_answer["threshold"]) == ("v0001", 0.5)
    for answer in (v2_answer, grpc_answer):
        np.testing.assert_allclose(answer.get_output_by_name("score").as_numpy(), scores, rtol=1e-6)
    assert grpc_answer.model_version == "v0001"
    missing = httpx.post(
        f"{predictor.url}/v1/models/{MODEL}:predict", json={"instances": [{"amount": 1.0}]}, timeout=10
    )
    assert missing.status_code == 400
    assert "are missing" in missing.json()["error"]


def test_without_its_predictor_the_transformer_answers_503(standard: Standard, serving_world: ServingWorld) -> None:
    assert standard.predictor.metric("berg_serving_latency_seconds_count", {"stage": "predict"}) >= len(PROTOCOLS) * 2
    assert standard.predictor.stop(timeout_s=30) == 0
    for transformer in standard.transformers.values():
        response = httpx.post(
            f"{transformer.url}/v1/models/{MODEL}:predict",
            json={"instances": serving_world.transactions(1)},
            timeout=30,
        )
        assert response.status_code == 503, response.text
        assert "predictor" in response.json()["error"] or "not ready" in response.json()["error"]
    for transformer in standard.transformers.values():
        # Readiness follows the predictor's, so the endpoints controller stops routing here too.
        wait_for(
            lambda url=transformer.url: httpx.get(f"{url}/readyz", timeout=5).status_code == 503,
            30,
            f"{transformer.name} to turn unready without its predictor",
        )
