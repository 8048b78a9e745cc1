"""The stream is ordered by event time, and every label judges a real, earlier transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest
from usecases.fraud.tests.simulator.streams import START, of_kind, run

from berg_fraud.contracts import LabelV1, TransactionV1
from berg_fraud.simulator.scenarios import SCENARIO_NAMES, ScenarioName

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_events_are_ordered_by_event_time_from_the_start(scenario: ScenarioName) -> None:
    events = run(scenario)
    times = [e.event_time for e in events]
    assert times == sorted(times)
    assert times[0] >= START


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_each_label_comes_after_the_transaction_it_judges(scenario: ScenarioName) -> None:
    events = run(scenario)
    transactions = {TransactionV1.model_validate_json(e.value).event_id: e for e in of_kind(events, "scored")}
    labels = [LabelV1.model_validate_json(e.value) for e in of_kind(events, "label")]
    assert len(labels) > 50
    for label in labels:
        transaction = transactions[label.transaction_event_id]
        assert label.event_time > transaction.event_time
        assert label.user_id.encode() == transaction.key
        assert label.is_fraud == transaction.truth.positive
        assert label.event_time == transaction.truth.label_due


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_every_label_due_within_the_run_is_emitted(scenario: ScenarioName) -> None:
    events = run(scenario)
    end = events[-1].event_time
    due = {
        e.truth.subject_id
        for e in of_kind(events, "scored")
        if e.truth.label_due is not None and e.truth.label_due < end
    }
    emitted = {e.truth.subject_id for e in of_kind(events, "label")}
    assert due == emitted


def test_fraud_is_charged_back_late_and_legitimate_payments_reviewed_soon() -> None:
    events = run()
    sent_at = {e.truth.subject_id: e.event_time for e in of_kind(events, "scored")}
    chargebacks = reviews = 0
    for event in of_kind(events, "label"):
        label = LabelV1.model_validate_json(event.value)
        delay = label.event_time - sent_at[str(label.transaction_event_id)]
        if label.is_fraud:
            chargebacks += 1
            assert label.source == "chargeback"
            assert timedelta(days=1) <= delay <= timedelta(days=60)
        else:
            reviews += 1
            assert label.source == "manual_review"
            assert timedelta(minutes=15) <= delay <= timedelta(days=3)
    assert chargebacks > 20
    assert reviews > 10


def test_the_median_chargeback_delay_is_a_few_days() -> None:
    delays = sorted(
        (e.truth.label_due - e.event_time).total_seconds() / 86_400
        for e in of_kind(run(), "scored")
        if e.truth.positive and e.truth.label_due is not None
    )
    assert 2.5 < delays[len(delays) // 2] < 6.5
