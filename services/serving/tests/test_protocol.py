"""The wire formats round-trip through KServe's own encoders and decoders (REST JSON, REST binary, gRPC)."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest
from kserve import InferRequest, InferResponse
from kserve.protocol.infer_type import RequestedOutput
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from services.serving.tests.helpers import NOW, transaction
from services.serving.tests.test_features import merchant_row, online, user_row

from berg_serving.predictions import ScoredEvent, Scores, score_events
from berg_serving.protocol import (
    DEPRECATED_EVENT_ID_ALIAS,
    SCORED_EVENT_ID,
    SCORING_OUTPUTS,
    PredictorResponseError,
    feature_columns_v1,
    feature_columns_v2,
    feature_request_v1,
    feature_request_v2,
    read_scores_v1,
    read_scores_v2,
    scored_response_v1,
    scored_response_v2,
    scores_response_v1,
    scores_response_v2,
    tensor_metadata,
)
from berg_serving.scoring_request import RequestError
from tests.fraud_serving import ASSEMBLER

pytestmark = pytest.mark.unit

SCORES = Scores(model_version="v0002", threshold=0.4, scores=[0.125, 0.75], decisions=["approve", "review"])


def columns() -> dict[str, np.ndarray]:
    return {"amount": np.array([10.0, 20.0]), "tx_count_1h": np.array([np.nan, 2.0])}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], equal_nan=True)


def test_feature_hop_v1_round_trip_uses_null_for_missing() -> None:
    body = feature_request_v1(columns())
    assert body["instances"][0] == {"amount": 10.0, "tx_count_1h": None}
    _same(feature_columns_v1(body, max_batch=5), columns())


def _over_rest(request: InferRequest) -> InferRequest:
    data, json_length = request.to_rest()
    if json_length is None:
        return InferRequest.from_inference_request(InferenceRequest.model_validate(data), "fraud")
    return InferRequest.from_bytes(data, json_length, "fraud")


def test_feature_hop_v2_round_trip_keeps_nan_over_rest_and_grpc() -> None:
    request = feature_request_v2(columns(), "fraud", "r1")
    _same(feature_columns_v2(_over_rest(request).inputs, max_batch=5), columns())
    request = feature_request_v2(columns(), "fraud", "r1")
    _same(feature_columns_v2(InferRequest.from_grpc(request.to_grpc()).inputs, max_batch=5), columns())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": []}, "no rows"),
        ({"instances": [{"a": 1}] * 6}, "at most 5"),
        ({"instances": [{"a": "1"}]}, "must be a number or null"),
        ({"instances": [{"a": True}]}, "must be a number or null"),
        ({"instances": [{"a": 1}, {"b": 1}]}, "same features"),
        ({"rows": []}, "a predictor request is"),
        ({"instances": [[1, 2]]}, "instances[0] must be a JSON object"),
    ],
)
def test_feature_hop_v1_refusals(body: object, message: str) -> None:
    with pytest.raises(RequestError) as refused:
        feature_columns_v1(body, max_batch=5)
    assert message in str(refused.value)


def test_scores_round_trip_v1() -> None:
    assert read_scores_v1(scores_response_v1(SCORES, "fraud"), rows=2) == SCORES
    with pytest.raises(PredictorResponseError):
        read_scores_v1(scores_response_v1(SCORES, "fraud"), rows=3)
    with pytest.raises(PredictorResponseError):
        read_scores_v1({"predictions": [{"score": 0.1}]}, rows=1)


@pytest.mark.parametrize("binary", [False, True])
def test_scores_round_trip_v2_over_rest_and_grpc(binary: bool) -> None:
    request = InferRequest("fraud", [], request_id="r7", parameters={"binary_data_output": binary})
    data, json_length = scores_response_v2(SCORES, "fraud", request).to_rest()
    rest = InferResponse.from_rest(data) if json_length is None else InferResponse.from_bytes(data, json_length)
    assert read_scores_v2(rest, rows=2) == SCORES
    grpc = InferResponse.from_grpc(scores_response_v2(SCORES, "fraud", None).to_grpc())
    assert grpc.model_version == "v0002"
    assert read_scores_v2(grpc, rows=2) == SCORES
    with pytest.raises(PredictorResponseError):
        read_scores_v2(grpc, rows=1)


def _scored() -> tuple[list[str], list[ScoredEvent]]:
    """Two scored transactions and their event ids."""
    batch = [transaction(), transaction()]
    frame = ASSEMBLER.assemble(batch, online((user_row(), merchant_row()), (None, None)))
    scored = score_events(batch, frame, SCORES, model_name="fraud", served_at=NOW, entity_keys=ASSEMBLER.entity_keys)
    return [str(t.event_id) for t in batch], scored


def test_scoring_responses_carry_the_version_and_one_result_per_event() -> None:
    event_ids, scored = _scored()
    v1 = scored_response_v1(scored, "fraud")
    assert v1["model_version"] == "v0002"
    assert [p["default_features_used"] for p in v1["predictions"]] == [False, True]
    assert [p["scored_event_id"] for p in v1["predictions"]] == event_ids
    assert [p["transaction_event_id"] for p in v1["predictions"]] == event_ids  # the deprecated alias
    assert list(v1["predictions"][0])[:3] == ["prediction_id", "scored_event_id", "transaction_event_id"]
    response = InferResponse.from_grpc(scored_response_v2(scored, "fraud", None).to_grpc())
    outputs = {output.name: output.as_numpy() for output in response.outputs}
    assert response.model_version == "v0002"
    assert list(outputs)[:3] == ["prediction_id", "scored_event_id", "transaction_event_id"]
    assert outputs["decision"].tolist() == [b"approve", b"review"]
    assert outputs["default_features_used"].tolist() == [False, True]
    assert [uuid.UUID(value.decode()) for value in outputs["prediction_id"]] == [s.prediction_id for s in scored]
    assert [value.decode() for value in outputs["scored_event_id"]] == event_ids
    assert [value.decode() for value in outputs["transaction_event_id"]] == event_ids
    assert all(math.isclose(a, b) for a, b in zip(outputs["score"], SCORES.scores, strict=True))


def test_the_deprecated_alias_is_transaction_event_id_and_the_metadata_lists_both_names() -> None:
    assert (SCORED_EVENT_ID, DEPRECATED_EVENT_ID_ALIAS) == ("scored_event_id", "transaction_event_id")
    metadata = {tensor["name"]: tensor for tensor in tensor_metadata(SCORING_OUTPUTS)}
    assert list(metadata)[:3] == ["prediction_id", "scored_event_id", "transaction_event_id"]
    assert metadata["scored_event_id"] == {"name": "scored_event_id", "datatype": "BYTES", "shape": [-1]}
    assert metadata["transaction_event_id"] == {"name": "transaction_event_id", "datatype": "BYTES", "shape": [-1]}


def _rest_outputs(response: InferResponse) -> dict[str, list[object]]:
    data, json_length = response.to_rest()
    decoded = InferResponse.from_rest(data) if json_length is None else InferResponse.from_bytes(data, json_length)
    return {
        output.name: [v.decode() if isinstance(v, bytes) else v for v in output.as_numpy().tolist()]
        for output in decoded.outputs
    }


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("name", ["scored_event_id", "transaction_event_id"])
def test_a_v2_client_asking_for_one_event_id_gets_exactly_that_output(name: str, binary: bool) -> None:
    event_ids, scored = _scored()
    request = InferRequest(
        "fraud", [], request_id="r8", request_outputs=[RequestedOutput(name, {"binary_data": binary})]
    )
    assert _rest_outputs(scored_response_v2(scored, "fraud", request)) == {name: event_ids}


def test_a_v2_client_asking_for_no_output_gets_every_one() -> None:
    _, scored = _scored()
    request = InferRequest("fraud", [], request_id="r9")
    assert list(_rest_outputs(scored_response_v2(scored, "fraud", request))) == list(SCORING_OUTPUTS)
