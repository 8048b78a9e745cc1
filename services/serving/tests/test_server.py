"""The HTTP app in process (httpx's ASGI transport): routes, errors as 4xx with a message, readiness, metrics.

The whole server, with real clients, gRPC, Feast and Kafka, is tested in ``tests/integration/serving``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry
from services.serving.tests.helpers import NOW, register, tensors, transaction_fields
from services.serving.tests.test_features import merchant_row, online, user_row

from berg.observability.health import ReadinessChecks
from berg.registry import ModelRegistry
from berg.web.app import WebSettings
from berg_fraud.contracts import TransactionV1
from berg_fraud.rules import FraudRules
from berg_serving.champion import ChampionSlot, load_champion
from berg_serving.decisions import DecisionPolicy
from berg_serving.metrics import ServingMetrics
from berg_serving.models import Transformer
from berg_serving.scorers import LocalScorer
from berg_serving.scoring_request import ScoringContract
from berg_serving.server import ServingServer
from berg_serving.settings import ServingSettings
from tests.fraud_serving import ASSEMBLER, SERVABLE_FEATURES

pytestmark = [pytest.mark.unit, pytest.mark.anyio, pytest.mark.filterwarnings("ignore:ORJSONResponse is deprecated")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


BUGGY_USER = "user-bug"
"""A user whose lookup fails with an error no route expects: a bug on the server's side."""


class DictFeatures:
    """Online values from a dict: ``known`` users get a stored row, everyone else none; :data:`BUGGY_USER` fails."""

    def __init__(self, known: set[str]) -> None:
        self.known = known

    async def lookup(self, entity_rows: list[dict[str, str]]) -> dict[str, list[Any]]:
        if any(row["user_id"] == BUGGY_USER for row in entity_rows):
            raise RuntimeError("a bug in the lookup")
        pairs = [(user_row() if row["user_id"] in self.known else None, merchant_row()) for row in entity_rows]
        return online(*pairs)

    async def close(self) -> None:
        return None


@pytest.fixture
def slot(tmp_path: Path) -> ChampionSlot:
    registry = ModelRegistry(tmp_path / "registry")
    version = register(registry, tmp_path / "m", list(SERVABLE_FEATURES), threshold=0.4)
    slot = ChampionSlot()
    slot.current = load_champion(registry, "fraud", version)
    return slot


@dataclass
class Served:
    client: httpx.AsyncClient
    readiness: ReadinessChecks
    metrics: CollectorRegistry


@pytest.fixture
def clock() -> list[datetime]:
    """The server's clock: ``clock[0]`` is what it reads now (a test may move it)."""
    return [NOW]


@pytest.fixture(params=["direct", "kserve"])
def served(slot: ChampionSlot, clock: list[datetime], request: pytest.FixtureRequest) -> Served:
    """The fused server in this process; every test runs over both V1 routes, which must answer the same."""
    settings = ServingSettings(web=WebSettings(max_body_bytes=20_000), max_batch=4, v1_route=request.param)
    metrics_registry = CollectorRegistry()
    metrics = ServingMetrics.register(metrics_registry)
    scorer = LocalScorer(slot, DecisionPolicy(), threads=1)
    model = Transformer(
        "fraud",
        ScoringContract(TransactionV1),
        DictFeatures({"user-00001"}),
        ASSEMBLER,
        scorer,
        None,
        metrics,
        max_batch=4,
        rules=FraudRules().value_rules("transactions"),
        clock=lambda: clock[0],
    )
    readiness = ReadinessChecks()
    readiness.add("model", model.is_ready)
    server = ServingServer(
        settings,
        model,
        readiness,
        metrics_registry,
        TransactionV1,
        value_rules=FraudRules().value_rules("transactions"),
    )
    transport = httpx.ASGITransport(app=server.app, raise_app_exceptions=False)
    return Served(httpx.AsyncClient(transport=transport, base_url="http://test"), readiness, metrics_registry)


async def predict(client: httpx.AsyncClient, body: object, **headers: str) -> httpx.Response:
    return await client.post(
        "/v1/models/fraud:predict", content=orjson.dumps(body), headers={"content-type": "application/json", **headers}
    )


async def test_v1_and_v2_score_and_flag_unknown_users(served: Served) -> None:
    client = served.client
    rows = [transaction_fields(), transaction_fields(user_id="stranger")]
    response = await predict(client, {"instances": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["default_features_used"] for p in body["predictions"]] == [False, True]
    assert body["model_version"] == "v0001"
    v2 = {"inputs": [{"name": t.name, "datatype": t.datatype, "shape": t.shape, "data": t.data} for t in tensors(rows)]}
    response = await client.post("/v2/models/fraud/infer", json=v2)
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output["data"] for output in response.json()["outputs"]}
    assert outputs["default_features_used"] == [False, True]
    assert response.json()["model_version"] == "v0001"


async def test_v2_answers_the_outputs_asked_for_and_its_metadata_lists_both_event_id_names(served: Served) -> None:
    client = served.client
    rows = [transaction_fields(), transaction_fields(user_id="stranger")]
    inputs = [{"name": t.name, "datatype": t.datatype, "shape": t.shape, "data": t.data} for t in tensors(rows)]
    for name in ("scored_event_id", "transaction_event_id"):
        response = await client.post("/v2/models/fraud/infer", json={"inputs": inputs, "outputs": [{"name": name}]})
        assert response.status_code == 200, response.text
        assert [(o["name"], o["data"]) for o in response.json()["outputs"]] == [(name, [r["event_id"] for r in rows])]
    metadata = await client.get("/v2/models/fraud")
    assert metadata.status_code == 200, metadata.text
    names = [tensor["name"] for tensor in metadata.json()["outputs"]]
    assert names[:3] == ["prediction_id", "scored_event_id", "transaction_event_id"]


Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
NOW_ID = uuid.uuid4()
BINARY = {"content-type": "application/octet-stream", "inference-header-content-length": "11"}
ONE_TENSOR = {"inputs": [{"name": "amount", "datatype": "FP64", "shape": [3], "data": [1]}]}


@pytest.mark.parametrize(
    ("send", "status", "message"),
    [
        (lambda c: predict(c, {"instances": [transaction_fields(amount="NaN")]}), 400, "amount"),
        (lambda c: predict(c, {"instances": [transaction_fields()] * 5}), 400, "at most 4"),
        (lambda c: predict(c, {"instances": [{}]}), 400, "event_id: Field required"),
        (
            lambda c: c.post("/v1/models/fraud:predict", content=b'{"instances": [NaN]}'),
            400,
            "instances[0]: NaN is not",
        ),
        (lambda c: c.post("/v1/models/fraud:predict", content=b"x" * 30_000), 413, "exceeds the limit"),
        (
            lambda c: c.post("/v1/models/fraud:predict", content=b"{}", headers={"content-type": "text/csv"}),
            415,
            "unsupported content type 'text/csv'",
        ),
        (
            lambda c: c.post(
                "/v2/models/fraud/infer", content=b"{}", headers={"content-type": "application/octet-stream"}
            ),
            415,
            "inference-header-content-length",
        ),
        (lambda c: c.post("/v2/models/fraud/infer", content=b'{"id": "x"}garbage', headers=BINARY), 400, "malformed"),
        (lambda c: c.post("/v2/models/fraud/infer", json={"inputs": 5}), 422, "invalid_request"),
        (lambda c: c.post("/v2/models/fraud/infer", json=ONE_TENSOR), 400, "missing input tensor"),
        (lambda c: c.post("/v2/models/nope/infer", json={"inputs": []}), 404, "nope"),
        (lambda c: c.get("/v2/models/fraud/versions/1"), 404, ""),
    ],
)
async def test_bad_input_is_a_4xx_with_a_message(served: Served, send: Send, status: int, message: str) -> None:
    response = await send(served.client)
    assert response.status_code == status, response.text
    assert message in response.text


def v1_body_with_amount(token: str) -> bytes:
    """A V1 body whose amount is ``token`` verbatim (a JSON encoder would refuse NaN or write null)."""
    return orjson.dumps({"instances": [transaction_fields(amount=12.5)]}).replace(b"12.5", token.encode())


def v2_json(amount: list[Any], **overrides: Any) -> dict[str, Any]:
    """A V2 JSON request of one transaction whose ``amount`` tensor holds ``amount`` as given."""
    inputs = [
        {"name": t.name, "datatype": t.datatype, "shape": t.shape, "data": amount if t.name == "amount" else t.data}
        for t in tensors([transaction_fields(**overrides)])
    ]
    return {"inputs": inputs}


def v2_binary_with_amount(token: str) -> bytes:
    """A V2 binary-extension body whose JSON header holds the amount tensor's data as ``token`` verbatim."""
    header = orjson.dumps(v2_json([12.5])).replace(b"12.5", token.encode())
    return header


# Each is accepted with 200 before serving applied strict types and validation's value rules (issue 15).
CONTRACT_REFUSALS = [
    pytest.param(lambda c: predict(c, {"instances": [transaction_fields(amount=True)]}), "amount", id="v1-bool"),
    pytest.param(lambda c: predict(c, {"instances": [transaction_fields(amount="12.5")]}), "amount", id="v1-string"),
    pytest.param(lambda c: predict(c, {"instances": [transaction_fields(amount=-5.0)]}), "amount", id="v1-negative"),
    pytest.param(lambda c: predict(c, {"instances": [transaction_fields(amount=0)]}), "amount", id="v1-zero"),
    pytest.param(lambda c: predict(c, {"instances": [transaction_fields(amount=1e7)]}), "amount", id="v1-too-large"),
    pytest.param(
        lambda c: predict(c, {"instances": [transaction_fields(event_time="2030-01-01T00:00:00Z")]}),
        "event_time",
        id="v1-2030",
    ),
    pytest.param(
        lambda c: predict(c, {"instances": [transaction_fields(event_time=1772452800)]}), "event_time", id="v1-epoch"
    ),
    pytest.param(lambda c: predict(c, {"instances": [transaction_fields(currency="XXX")]}), "currency", id="currency"),
    pytest.param(
        lambda c: predict(c, {"instances": [transaction_fields(merchant_category="0000")]}),
        "merchant_category",
        id="unknown-category",
    ),
    pytest.param(
        lambda c: predict(c, {"instances": [transaction_fields(schema_version=True)]}),
        "schema_version",
        id="v1-version-bool",
    ),
    pytest.param(
        lambda c: predict(c, {"instances": [transaction_fields(event_id=str(NOW_ID))] * 2}),
        "event_id",
        id="v1-same-event-twice",
    ),
    pytest.param(
        lambda c: c.post("/v1/models/fraud:predict", content=v1_body_with_amount("NaN")), "amount", id="v1-nan-token"
    ),
    pytest.param(
        lambda c: c.post("/v1/models/fraud:predict", content=v1_body_with_amount("1e400")), "amount", id="v1-1e400"
    ),
    pytest.param(
        lambda c: c.post("/v1/models/fraud:predict", content=v1_body_with_amount("-Infinity")),
        "amount",
        id="v1-infinity",
    ),
    pytest.param(
        lambda c: c.post(
            "/v1/models/fraud:predict",
            content=v1_body_with_amount("NaN"),
            headers={"content-type": "application/json; charset=utf-8"},
        ),
        "amount",
        id="v1-nan-token-charset",
    ),
    pytest.param(lambda c: c.post("/v2/models/fraud/infer", json=v2_json([True])), "amount", id="v2-bool"),
    pytest.param(lambda c: c.post("/v2/models/fraud/infer", json=v2_json(["12.5"])), "amount", id="v2-string"),
    pytest.param(lambda c: c.post("/v2/models/fraud/infer", json=v2_json([-5.0])), "amount", id="v2-negative"),
    pytest.param(
        lambda c: c.post("/v2/models/fraud/infer", json=v2_json([12.5], event_time="2030-01-01T00:00:00Z")),
        "event_time",
        id="v2-2030",
    ),
    pytest.param(
        lambda c: c.post(
            "/v2/models/fraud/infer",
            content=orjson.dumps(v2_json([12.5])).replace(b"12.5", b"1" + b"0" * 400),
            headers={"content-type": "application/json"},
        ),
        "amount",
        id="v2-huge-integer",
    ),
    pytest.param(
        lambda c: c.post(
            "/v2/models/fraud/infer",
            content=v2_binary_with_amount("NaN"),
            headers={
                "content-type": "application/octet-stream",
                "inference-header-content-length": str(len(v2_binary_with_amount("NaN"))),
            },
        ),
        "inputs[4].data[0]",
        id="v2-binary-header-nan-token",
    ),
]


@pytest.mark.parametrize(("send", "field"), CONTRACT_REFUSALS)
async def test_what_the_contract_or_a_value_rule_refuses_is_a_400_naming_the_field(
    served: Served, send: Send, field: str
) -> None:
    response = await send(served.client)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]


async def test_the_event_time_bound_is_the_server_clock_plus_the_skew(served: Served, clock: list[datetime]) -> None:
    skew = FraudRules().clock_skew
    at_the_bound = transaction_fields(event_time=(clock[0] + skew).isoformat())
    assert (await predict(served.client, {"instances": [at_the_bound]})).status_code == 200
    clock[0] -= timedelta(microseconds=1)  # the same transaction, a moment earlier on the server's clock
    response = await predict(served.client, {"instances": [at_the_bound]})
    assert response.status_code == 400, response.text
    assert "instances[0]: event_time" in response.json()["error"]


async def test_draining_turns_readiness_503_while_requests_are_still_served(served: Served) -> None:
    client = served.client
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/v2/health/ready")).status_code == 200
    served.readiness.drain()
    assert (await client.get("/readyz")).status_code == 503
    assert (await client.get("/v2/health/ready")).status_code == 503
    assert (await predict(client, {"instances": [transaction_fields()]})).status_code == 200


async def test_no_champion_yet_is_not_ready_and_503(served: Served, slot: ChampionSlot) -> None:
    client = served.client
    slot.current = None
    assert (await client.get("/readyz")).json()["checks"]["model"] is False
    assert (await client.get("/v2/models/fraud/ready")).status_code == 503
    assert (await predict(client, {"instances": [transaction_fields()]})).status_code == 503


async def test_metrics_cover_every_stage(served: Served) -> None:
    await predict(served.client, {"instances": [transaction_fields(user_id="stranger")]})
    metrics = served.metrics
    for stage in ("lookup", "predict", "total"):
        assert metrics.get_sample_value("berg_serving_latency_seconds_count", {"stage": stage}) == 1
    assert metrics.get_sample_value("berg_serving_score_count") == 1
    assert metrics.get_sample_value("berg_serving_default_features_total", {"entity": "user"}) == 1
    assert "berg_serving_latency_seconds_bucket" in (await served.client.get("/metrics")).text


async def test_openapi_names_the_model_and_the_v1_body(served: Served) -> None:
    document = (await served.client.get("/openapi.json")).json()
    predict_route = document["paths"]["/v1/models/{model_name}:predict"]["post"]
    assert predict_route["parameters"][0]["schema"]["enum"] == ["fraud"]
    body = predict_route["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["instances"]["items"]["title"] == "TransactionV1"
    assert "/v2/repository/models/{model_name}/load" not in document["paths"]


def requests_counted(served: Served, protocol: str, outcome: str) -> float:
    value = served.metrics.get_sample_value("berg_serving_requests_total", {"protocol": protocol, "outcome": outcome})
    return value or 0.0


async def test_every_inference_call_is_counted_by_protocol_and_outcome(served: Served, slot: ChampionSlot) -> None:
    client = served.client
    await predict(client, {"instances": [transaction_fields()]})
    await predict(client, {"instances": [transaction_fields(amount="NaN")]})
    await client.post("/v1/models/fraud:predict", content=b"{}", headers={"content-type": "text/csv"})
    await client.post("/v2/models/fraud/infer", json=ONE_TENSOR)
    await client.get("/readyz")  # not an inference call
    slot.current = None
    await predict(client, {"instances": [transaction_fields()]})  # 503: nothing to serve
    assert requests_counted(served, "v1", "ok") == 1
    assert requests_counted(served, "v1", "client_error") == 2  # the 400 and the 415 from the middleware
    assert requests_counted(served, "v2", "client_error") == 1
    assert requests_counted(served, "v1", "server_error") == 1


async def test_a_body_streamed_past_the_limit_is_a_413_and_a_bug_a_500_saying_where_to_look(served: Served) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no content-length: the limit counts the bytes as they come
        for _ in range(30):
            yield b"x" * 1_000

    streamed = await served.client.post(
        "/v1/models/fraud:predict", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text
    assert "exceeds the limit" in streamed.json()["detail"]
    bug = await predict(served.client, {"instances": [transaction_fields(user_id=BUGGY_USER)]})
    assert bug.status_code == 500
    assert bug.json() == {"error": "internal_error", "detail": "an unexpected error occurred; see the service log"}
    assert requests_counted(served, "v1", "client_error") == 1
    assert requests_counted(served, "v1", "server_error") == 1


async def explain(client: httpx.AsyncClient, body: object, query: str = "") -> httpx.Response:
    return await client.post(
        f"/v1/models/fraud:explain{query}", content=orjson.dumps(body), headers={"content-type": "application/json"}
    )


async def test_v1_and_v2_explain_answer_the_contributions_of_the_same_features_as_predict(
    served: Served, slot: ChampionSlot
) -> None:
    import numpy as np
    import xgboost as xgb

    rows = [transaction_fields(amount=900.0), transaction_fields(user_id="stranger", amount=3.5)]
    predicted = (await predict(served.client, {"instances": rows})).json()["predictions"]
    v1 = await explain(served.client, {"instances": rows}, "?top_k=4")
    assert v1.status_code == 200, v1.text
    v2_body = {
        "id": "req-1",
        "inputs": [{"name": t.name, "datatype": t.datatype, "shape": t.shape, "data": t.data} for t in tensors(rows)],
    }
    v2 = await served.client.post("/v2/models/fraud/explain?top_k=4", json=v2_body)
    assert v2.status_code == 200, v2.text
    assert v2.json()["id"] == "req-1"
    assert v1.json()["explanations"] == v2.json()["explanations"]

    champion = slot.current
    assert champion is not None
    events = [TransactionV1.model_validate(row) for row in rows]
    frame = ASSEMBLER.assemble(events, await DictFeatures({"user-00001"}).lookup(ASSEMBLER.entity_rows(events)))
    margins = champion.booster.predict(
        xgb.DMatrix(frame.matrix(champion.features), missing=np.nan), output_margin=True, validate_features=False
    )
    body = v1.json()
    assert body["model_version"] == "v0001"
    assert body["top_k"] == 4
    for row, (answer, prediction) in enumerate(zip(body["explanations"], predicted, strict=True)):
        assert answer["scored_event_id"] == rows[row]["event_id"]
        assert answer["score"] == prediction["score"]
        assert answer["decision"] == prediction["decision"]
        contributions = [c["contribution"] for c in answer["contributions"]]
        assert sum(contributions) + answer["bias"] == pytest.approx(float(margins[row]), abs=1e-4)
        assert answer["margin"] == pytest.approx(float(margins[row]), abs=1e-4)
        assert [c["feature"] for c in answer["contributions"]] == list(champion.features)
        for item in answer["contributions"]:
            value = float(frame.columns[item["feature"]][row])
            assert item["value"] == (value if np.isfinite(value) else None)
        assert len(answer["reasons"]) == 4
        ranked = sorted(answer["contributions"], key=lambda c: (-c["contribution"], c["feature"]))
        assert answer["reasons"] == ranked[:4]
    # The stranger's stored features are missing: reported as null, not NaN.
    assert any(item["value"] is None for item in body["explanations"][1]["contributions"])


async def test_explain_defaults_to_three_reasons_and_logs_no_prediction(served: Served) -> None:
    response = await explain(served.client, {"instances": [transaction_fields()]})
    assert response.status_code == 200, response.text
    assert response.json()["top_k"] == 3
    assert len(response.json()["explanations"][0]["reasons"]) == 3
    assert served.metrics.get_sample_value("berg_serving_predictions_total", {"decision": "approve"}) is None
    assert served.metrics.get_sample_value("berg_serving_latency_seconds_count", {"stage": "explain"}) == 1


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?top_k=0", 422, "greater than or equal to 1"),
        ("?top_k=abc", 422, "valid integer"),
        ("?top_k=1.5", 422, "valid integer"),
        (f"?top_k={len(SERVABLE_FEATURES) + 1}", 400, f"top_k must be an integer from 1 to {len(SERVABLE_FEATURES)}"),
    ],
)
async def test_a_bad_top_k_is_a_4xx_with_a_message(served: Served, query: str, status: int, message: str) -> None:
    body = {"instances": [transaction_fields()]}
    v2_body = {
        "inputs": [
            {"name": t.name, "datatype": t.datatype, "shape": t.shape, "data": t.data}
            for t in tensors([transaction_fields()])
        ]
    }
    for response in (
        await explain(served.client, body, query),
        await served.client.post(f"/v2/models/fraud/explain{query}", json=v2_body),
    ):
        assert response.status_code == status, response.text
        assert message in response.text


async def test_explain_refuses_what_predict_refuses_and_an_unknown_model(served: Served, slot: ChampionSlot) -> None:
    bad = await explain(served.client, {"instances": [transaction_fields(amount=-1.0)]})
    assert bad.status_code == 400
    assert "instances[0]: amount" in bad.json()["error"]
    unknown = await served.client.post(
        "/v1/models/nope:explain", content=orjson.dumps({"instances": [transaction_fields()]})
    )
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["error"]
    unknown_v2 = await served.client.post("/v2/models/nope/explain", json={"inputs": []})
    assert unknown_v2.status_code == 404
    not_json = await served.client.post(
        "/v1/models/fraud:explain", content=b"x", headers={"content-type": "text/plain"}
    )
    assert not_json.status_code == 415
    slot.current = None
    assert (await explain(served.client, {"instances": [transaction_fields()]})).status_code == 503


async def test_explain_needs_the_model_in_this_process_501_in_the_standard_and_predictor_shapes(
    slot: ChampionSlot,
) -> None:
    from berg_serving.models import Predictor
    from berg_serving.scorers import RemotePredictor
    from berg_serving.settings import PredictorLinkSettings

    settings = ServingSettings(web=WebSettings(max_body_bytes=20_000), max_batch=4)
    rules = FraudRules().value_rules("transactions")
    metrics_registry = CollectorRegistry()
    metrics = ServingMetrics.register(metrics_registry)
    transformer = Transformer(
        "fraud",
        ScoringContract(TransactionV1),
        DictFeatures({"user-00001"}),
        ASSEMBLER,
        RemotePredictor(PredictorLinkSettings(host="127.0.0.1:1"), "fraud"),
        None,
        metrics,
        max_batch=4,
        rules=rules,
        clock=lambda: NOW,
    )
    predictor = Predictor("fraud", LocalScorer(slot, DecisionPolicy(), threads=1), metrics, max_batch=4)
    features = dict.fromkeys(SERVABLE_FEATURES, 1.0)
    for model, body in ((transformer, {"instances": [transaction_fields()]}), (predictor, {"instances": [features]})):
        server = ServingServer(
            settings, model, ReadinessChecks(), CollectorRegistry(), TransactionV1, value_rules=rules
        )
        transport = httpx.ASGITransport(app=server.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await explain(client, body)
        assert response.status_code == 501, response.text
        assert "explain" in response.json()["error"] or "explainer" in response.json()["error"]


async def test_v1_predict_takes_cloudevents_and_names_an_unknown_model_on_either_route(served: Served) -> None:
    client = served.client
    unknown = await client.post("/v1/models/nope:predict", content=orjson.dumps({"instances": [transaction_fields()]}))
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["error"]
    cloud_headers = {
        "ce-specversion": "1.0",
        "ce-source": "berg-test",
        "ce-type": "berg.scoring.request",
        "ce-id": "36077800-0e1f-4c1f-8a06-6a1dbf5f58b4",
    }
    event = transaction_fields()
    binary = await predict(client, {"instances": [event]}, **cloud_headers)
    assert binary.status_code == 200, binary.text
    assert binary.headers["ce-specversion"] == "1.0"  # a CloudEvent in, a CloudEvent out (KServe's encode)
    assert binary.headers["ce-source"].startswith("io.kserve.inference.")
    assert orjson.loads(binary.content)["predictions"][0]["scored_event_id"] == event["event_id"]
    structured = {
        "specversion": "1.0",
        "source": "berg-test",
        "type": "berg.scoring.request",
        "id": "5a0e8f2c-8c3f-4b5e-9d2a-0b3c4d5e6f70",
        "time": "2026-03-01T00:00:00Z",
        "data": {"instances": [transaction_fields()]},
    }
    response = await predict(client, structured)
    assert response.status_code == 200, response.text
    assert orjson.loads(response.content)["predictions"][0]["decision"] in {"approve", "review", "decline"}
