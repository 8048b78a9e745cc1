"""Scoring requests and prediction-log records for another domain: ad impressions, not card payments.

The request's tensors, their datatypes and the value rules come from the use case's scored contract and
rules; the logged record names the event's own id and time and the feature set's entities.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from services.serving.tests.helpers import Tensor

from berg.contracts import PredictionLogReader, PredictionV3
from berg.contracts.shape import contract_columns, v2_datatypes
from berg_clicks.contracts import ImpressionV1
from berg_clicks.features import clicks_features
from berg_clicks.rules import ClicksRules
from berg_clicks.use_case import clicks
from berg_serving.features import FeatureAssembler
from berg_serving.predictions import Scores, score_events, to_prediction
from berg_serving.scoring_request import RequestError, ScoringContract
from tests.use_cases import impression

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
USE_CASE = clicks()
REQUEST = ScoringContract(USE_CASE.scored.contract)
RULES = ClicksRules().value_rules(USE_CASE.scored.name)


def shown(count: int) -> list[ImpressionV1]:
    return [impression(number, NOW - timedelta(minutes=number)) for number in range(1, count + 1)]


def fields(event: ImpressionV1, **overrides: Any) -> dict[str, Any]:
    row = event.model_dump(mode="json", exclude={"schema_version"})
    row.update(overrides)
    return row


def tensors(rows: list[dict[str, Any]]) -> list[Tensor]:
    """One tensor per field, typed as the contract says."""
    return [Tensor(name, REQUEST.tensors[name], [row[name] for row in rows]) for name in rows[0]]


def test_the_tensors_are_the_contracts_fields_and_kinds() -> None:
    columns = contract_columns(ImpressionV1, exclude={"schema_version"})
    assert dict(REQUEST.tensors) == v2_datatypes(columns)
    assert REQUEST.tensors["bid"] == "FP64"
    assert REQUEST.tensors["slot"] == "INT64"
    assert "campaign_id" in REQUEST.tensors
    assert "amount" not in REQUEST.tensors


def test_v1_and_v2_parse_into_the_scored_contract() -> None:
    events = shown(3)
    rows = [fields(event) for event in events]
    assert REQUEST.parse_v1({"instances": rows}, max_batch=3, rules=RULES, now=NOW) == events
    parsed = REQUEST.parse_v2(tensors(rows), max_batch=3, rules=RULES, now=NOW)
    assert parsed == events
    assert all(type(event) is ImpressionV1 and type(event.slot) is int for event in parsed)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"placement": "popup"}, "invalid event(s): instances[0]: placement: 'popup' is not one of the known values"),
        ({"bid": 80.0}, "instances[0]: bid: must be above 0 and at most 50"),
        ({"device": "tv"}, "instances[0]: device: Input should be 'mobile' or 'desktop'"),
        ({"amount": 12.5}, "instances[0]: amount: Extra inputs are not permitted"),
        (
            {"event_time": "2030-01-01T00:00:00Z"},
            "instances[0]: event_time: 2030-01-01T00:00:00+00:00 is in the future",
        ),
    ],
)
def test_v1_refusals_follow_the_use_cases_contract_and_rules(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError) as refused:
        REQUEST.parse_v1({"instances": [fields(shown(1)[0], **overrides)]}, max_batch=1, rules=RULES, now=NOW)
    assert message in str(refused.value)


def _replace(rows: list[dict[str, Any]], tensor: Tensor) -> list[Tensor]:
    return [*(t for t in tensors(rows) if t.name != tensor.name), tensor]


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (Tensor("slot", "FP64", [1.0]), "tensor 'slot' must be INT64 (or another integer type), got FP64"),
        (Tensor("slot", "INT64", [1.5]), "tensor 'slot'[0] must be a JSON integer (INT64), got float"),
        (Tensor("slot", "INT64", [True]), "tensor 'slot'[0] must be a JSON integer (INT64), got a boolean"),
        (Tensor("bid", "BYTES", ["0.5"]), "tensor 'bid' must be FP64"),
        (Tensor("amount", "FP64", [1.0]), "unknown input tensor(s) ['amount']"),
        (Tensor("placement", "BYTES", ["popup"]), "row[0]: placement: 'popup' is not one of the known values"),
    ],
)
def test_v2_refusals_follow_the_use_cases_contract_and_rules(tensor: Tensor, message: str) -> None:
    with pytest.raises(RequestError) as refused:
        REQUEST.parse_v2(_replace([fields(shown(1)[0])], tensor), max_batch=1, rules=RULES, now=NOW)
    assert message in str(refused.value)


def test_a_scored_impression_becomes_a_v3_record_with_its_entities_and_its_clock() -> None:
    assembler = FeatureAssembler(clicks_features())
    events = shown(2)
    frame = assembler.assemble(events, {})  # no entity known to the online store
    scores = Scores("v0001", 0.3, [0.2, 0.6], ["approve", "review"])
    served_at = NOW + timedelta(seconds=1)
    scored = score_events(
        events, frame, scores, model_name="clicks", served_at=served_at, entity_keys=assembler.entity_keys
    )
    predictions = [to_prediction(item) for item in scored]
    assert assembler.entity_keys == tuple(entity.key for entity in clicks_features().entities)
    assert [p.entities for p in predictions] == [
        {"viewer_id": event.viewer_id, "campaign_id": event.campaign_id} for event in events
    ]
    assert [p.scored_event_id for p in predictions] == [event.event_id for event in events]
    assert [p.scored_event_time for p in predictions] == [event.event_time for event in events]
    assert [p.event_id for p in predictions] == [item.prediction_id for item in scored]
    assert all(p.served_at == served_at and p.default_features_used for p in predictions)
    assert [p.features for p in predictions] == [{"bid": event.bid, "slot": float(event.slot)} for event in events]
    for prediction in predictions:
        assert PredictionLogReader().model_validate_json(prediction.model_dump_json()) == prediction
        assert isinstance(prediction, PredictionV3)


def test_the_v1_openapi_body_is_the_scored_contract_with_its_rules() -> None:
    from berg_serving.server import v1_request_schema

    body = v1_request_schema(USE_CASE.scored.contract, RULES)["requestBody"]["content"]["application/json"]["schema"]
    items = body["properties"]["instances"]["items"]
    assert items["title"] == "ImpressionV1"
    assert items["properties"]["bid"]["maximum"] == ClicksRules().max_bid
    assert sorted(items["properties"]["placement"]["enum"]) == sorted(ClicksRules().placements)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_impression_is_explained_with_the_use_cases_features(tmp_path: Any, anyio_backend: str) -> None:
    import numpy as np
    import xgboost as xgb
    from kserve.model import InferenceVerb
    from prometheus_client import CollectorRegistry
    from services.serving.tests.helpers import register

    from berg.registry import ModelRegistry
    from berg_serving.champion import ChampionSlot, load_champion
    from berg_serving.decisions import DecisionPolicy
    from berg_serving.explanations import TOP_K_HEADER
    from berg_serving.metrics import ServingMetrics
    from berg_serving.models import Transformer
    from berg_serving.scorers import LocalScorer

    class NoRows:
        """An online store that knows no viewer and no campaign."""

        async def lookup(self, entity_rows: list[dict[str, str]]) -> dict[str, list[Any]]:
            return {}

        async def close(self) -> None:
            return None

    assembler = FeatureAssembler(clicks_features())
    registry = ModelRegistry(tmp_path / "registry")
    version = register(registry, tmp_path / "m", list(assembler.servable), threshold=0.3)
    slot = ChampionSlot()
    slot.current = load_champion(registry, "fraud", version)
    model = Transformer(
        "clicks",
        REQUEST,
        NoRows(),
        assembler,
        LocalScorer(slot, DecisionPolicy(), threads=1),
        None,
        ServingMetrics.register(CollectorRegistry()),
        max_batch=4,
        rules=RULES,
        clock=lambda: NOW,
    )
    events = shown(2)
    body, _ = await model(
        {"instances": [fields(event) for event in events]}, {TOP_K_HEADER: "2"}, verb=InferenceVerb.EXPLAIN
    )
    frame = assembler.assemble(events, {})
    champion = slot.current
    margins = champion.booster.predict(
        xgb.DMatrix(frame.matrix(champion.features), missing=np.nan), output_margin=True, validate_features=False
    )
    assert body["model_name"] == "clicks"
    for event, margin, answer in zip(events, margins, body["explanations"], strict=True):
        assert answer["scored_event_id"] == str(event.event_id)
        values = {item["feature"]: item["value"] for item in answer["contributions"]}
        assert values["bid"] == event.bid
        assert values["slot"] == float(event.slot)
        assert values["impressions_1h"] is None  # the viewer is unknown to the store
        assert sum(item["contribution"] for item in answer["contributions"]) + answer["bias"] == pytest.approx(
            float(margin), abs=1e-4
        )
        assert len(answer["reasons"]) == 2
