"""Reason codes from the fused server: KServe's V1 explain verb (with KServe's own REST client) and the
V2-style explain route, over the world's Feast and a model trained on it.

Each answer's contributions plus its bias equal the booster's margin (``output_margin=True``) on the
online features computed in the test; the values it reports are those features (missing: null); the
reasons are the top_k contributions, largest first; a bad top_k or an unknown model is a 4xx.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import xgboost as xgb
from kserve import InferenceRESTClient, RESTConfig

from berg.registry import ModelRegistry
from berg_serving.champion import load_champion
from tests.integration.serving.conftest import MODEL, ServingProcess, ServingWorld
from tests.integration.serving.scoring import expected_scores, infer_request, online_frame, v2_tensors

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def registry(serving_world: ServingWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serving_world.registry(tmp_path_factory.mktemp("explain") / "registry")


@pytest.fixture(scope="module")
def fused(serving_world: ServingWorld, registry: Path, start_server: Any) -> ServingProcess:
    return start_server("fused", serving_world, registry, MAX_BATCH="64")


def v2_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "explain-1",
        "inputs": [
            {
                "name": name,
                "datatype": datatype,
                "shape": [len(values)],
                "data": [v.decode() if isinstance(v, bytes) else v for v in values.tolist()],
            }
            for name, datatype, values in v2_tensors(rows)
        ],
    }


def check_explanations(
    body: dict[str, Any], world: ServingWorld, registry: Path, rows: list[dict[str, Any]], top_k: int
) -> None:
    champion = load_champion(ModelRegistry(registry), MODEL, "v0001")
    frame = online_frame(world, rows)
    margins = champion.booster.predict(
        xgb.DMatrix(frame.matrix(champion.features), missing=np.nan), output_margin=True, validate_features=False
    )
    scores, decisions = expected_scores(world, registry, rows)
    assert body["model_name"] == MODEL
    assert body["model_version"] == "v0001"
    assert body["top_k"] == top_k
    assert len(body["explanations"]) == len(rows)
    for row, answer in enumerate(body["explanations"]):
        assert answer["scored_event_id"] == rows[row]["event_id"]
        assert answer["score"] == pytest.approx(scores[row], rel=1e-6)
        assert answer["decision"] == decisions[row]
        contributions = answer["contributions"]
        assert [c["feature"] for c in contributions] == list(champion.features)
        assert math.fsum(c["contribution"] for c in contributions) + answer["bias"] == pytest.approx(
            float(margins[row]), abs=1e-4
        )
        assert answer["margin"] == pytest.approx(float(margins[row]), abs=1e-4)
        assert 1 / (1 + math.exp(-answer["margin"])) == pytest.approx(scores[row], abs=1e-5)
        for item in contributions:
            expected = float(frame.columns[item["feature"]][row])
            assert item["value"] == (expected if math.isfinite(expected) else None)
        reasons = answer["reasons"]
        assert len(reasons) == top_k
        assert [r["contribution"] for r in reasons] == sorted((r["contribution"] for r in reasons), reverse=True)
        assert reasons == sorted(contributions, key=lambda c: (-c["contribution"], c["feature"]))[:top_k]


def test_v1_explain_with_kserve_rest_client(fused: ServingProcess, serving_world: ServingWorld, registry: Path) -> None:
    rows = serving_world.transactions(5, seed=11, unknown=2)

    async def call() -> dict[str, Any]:
        client = InferenceRESTClient(RESTConfig(protocol="v1", retries=0))
        try:
            answer: dict[str, Any] = await client.explain(fused.url, MODEL, {"instances": rows})
            return answer
        finally:
            await client.close()

    body = asyncio.run(call())
    check_explanations(body, serving_world, registry, rows, top_k=3)
    # The strangers' stored features are missing: null, not NaN.
    assert any(item["value"] is None for item in body["explanations"][-1]["contributions"])


def test_v2_explain_answers_the_same(fused: ServingProcess, serving_world: ServingWorld, registry: Path) -> None:
    rows = serving_world.transactions(4, seed=12, unknown=1)
    response = httpx.post(f"{fused.url}/v2/models/{MODEL}/explain", params={"top_k": 6}, json=v2_body(rows), timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "explain-1"
    check_explanations(response.json(), serving_world, registry, rows, top_k=6)
    v1 = httpx.post(f"{fused.url}/v1/models/{MODEL}:explain?top_k=6", json={"instances": rows}, timeout=30)
    assert v1.json()["explanations"] == response.json()["explanations"]


def test_v2_explain_takes_the_binary_extension(
    fused: ServingProcess, serving_world: ServingWorld, registry: Path
) -> None:
    rows = serving_world.transactions(3, seed=15)
    body, json_length = infer_request(rows, binary=True).to_rest()
    assert json_length is not None
    response = httpx.post(
        f"{fused.url}/v2/models/{MODEL}/explain",
        content=body,
        headers={"content-type": "application/octet-stream", "inference-header-content-length": str(json_length)},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    check_explanations(response.json(), serving_world, registry, rows, top_k=3)


def test_top_k_up_to_every_feature(fused: ServingProcess, serving_world: ServingWorld, registry: Path) -> None:
    rows = serving_world.transactions(1, seed=13)
    count = len(serving_world.feature_columns)
    response = httpx.post(f"{fused.url}/v1/models/{MODEL}:explain", params={"top_k": count}, json={"instances": rows})
    assert response.status_code == 200, response.text
    check_explanations(response.json(), serving_world, registry, rows, top_k=count)


def test_bad_top_k_and_unknown_model_are_4xx(fused: ServingProcess, serving_world: ServingWorld) -> None:
    rows = serving_world.transactions(1, seed=14)
    count = len(serving_world.feature_columns)
    for route, body in (
        (f"/v1/models/{MODEL}:explain", {"instances": rows}),
        (f"/v2/models/{MODEL}/explain", v2_body(rows)),
    ):
        too_many = httpx.post(f"{fused.url}{route}", params={"top_k": count + 1}, json=body)
        assert too_many.status_code == 400, too_many.text
        assert f"top_k must be an integer from 1 to {count}" in too_many.json()["error"]
        for bad in ("0", "-2", "three"):
            refused = httpx.post(f"{fused.url}{route}", params={"top_k": bad}, json=body)
            assert refused.status_code == 422, refused.text
            assert "top_k" in refused.text
    unknown = httpx.post(f"{fused.url}/v1/models/other:explain", json={"instances": rows})
    assert unknown.status_code == 404
    assert "other" in unknown.json()["error"]
    assert httpx.post(f"{fused.url}/v2/models/other/explain", json=v2_body(rows)).status_code == 404
