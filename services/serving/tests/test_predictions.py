"""Scored events become PredictionV3 records: the event's id, both clocks, its entities, no NaN, one id each."""

from __future__ import annotations

from datetime import timedelta

import pytest
from services.serving.tests.helpers import NOW, transaction
from services.serving.tests.test_features import merchant_row, online, user_row

from berg.contracts import PredictionV3
from berg_serving.predictions import Scores, score_events, to_prediction
from tests.fraud_serving import ASSEMBLER

pytestmark = pytest.mark.unit


def test_predictions_follow_the_contract() -> None:
    # Transactions from a replay: their event times are days before the time they are served.
    times = [NOW - timedelta(days=9), NOW - timedelta(days=8, hours=3)]
    batch = [transaction(user_id="known", event_time=times[0]), transaction(user_id="stranger", event_time=times[1])]
    frame = ASSEMBLER.assemble(batch, online((user_row(), merchant_row()), (None, merchant_row())))
    scores = Scores(model_version="v0003", threshold=0.4, scores=[0.1, 0.95], decisions=["approve", "decline"])
    scored = score_events(batch, frame, scores, model_name="fraud", served_at=NOW, entity_keys=ASSEMBLER.entity_keys)
    predictions = [to_prediction(item) for item in scored]
    assert [p.scored_event_id for p in predictions] == [t.event_id for t in batch]
    assert [p.entities for p in predictions] == [{"user_id": t.user_id, "merchant_id": t.merchant_id} for t in batch]
    assert len({p.event_id for p in predictions}) == 2
    assert [p.default_features_used for p in predictions] == [False, True]
    assert [p.decision for p in predictions] == ["approve", "decline"]
    assert {p.model_version for p in predictions} == {"v0003"}
    assert predictions[0].features["tx_count_1h"] == 3.0
    assert "tx_count_1h" not in predictions[1].features
    assert [p.scored_event_time for p in predictions] == times
    for prediction in predictions:
        assert PredictionV3.model_validate_json(prediction.model_dump_json()) == prediction
        assert prediction.served_at == NOW
        assert prediction.threshold == 0.4


def test_counts_must_agree() -> None:
    batch = [transaction()]
    frame = ASSEMBLER.assemble(batch, online((None, None)))
    with pytest.raises(ValueError, match="1 events, 1 feature rows and 2 scores"):
        score_events(
            batch,
            frame,
            Scores("v1", 0.5, [0.1, 0.2], ["approve", "approve"]),
            model_name="fraud",
            served_at=NOW,
            entity_keys=ASSEMBLER.entity_keys,
        )
    with pytest.raises(ValueError, match="2 scores but 1 decisions"):
        Scores("v1", 0.5, [0.1, 0.2], ["approve"])
