"""Scenarios: the baseline until the onset, their own change after it, and the truth on every event."""

from __future__ import annotations

import pytest
from usecases.fraud.tests.simulator.streams import ONSET, median, of_kind, run

from berg.simulator.traffic import SCENARIO_HEADER, SimulatedEvent
from berg_fraud.contracts import TransactionV1
from berg_fraud.simulator.scenarios import COVARIATE_SHIFT_AMOUNT_MULTIPLIER, FRAUD_WAVE_CLONED_CARD_SHARE, ScenarioName

pytestmark = pytest.mark.unit

DRIFTING: list[ScenarioName] = ["covariate_shift", "concept_drift", "fraud_wave", "label_delay_change", "malformed"]


def before_onset(events: tuple[SimulatedEvent, ...]) -> list[SimulatedEvent]:
    return [e for e in events if e.event_time < ONSET]


def after_onset(events: tuple[SimulatedEvent, ...]) -> list[SimulatedEvent]:
    return [e for e in events if e.event_time >= ONSET]


@pytest.mark.parametrize("scenario", DRIFTING)
def test_before_the_onset_every_scenario_is_the_baseline_record_for_record(scenario: ScenarioName) -> None:
    baseline = before_onset(run("baseline"))
    drifting = before_onset(run(scenario))
    assert len(baseline) > 5_000
    assert [(e.topic, e.key, e.value, e.headers) for e in drifting] == [
        (e.topic, e.key, e.value, e.headers) for e in baseline
    ]


@pytest.mark.parametrize("scenario", ["baseline", *DRIFTING])
def test_every_record_says_which_scenario_is_in_force(scenario: ScenarioName) -> None:
    for event in run(scenario):
        expected = scenario if event.event_time >= ONSET else "baseline"
        assert event.truth.scenario == expected
        assert dict(event.headers)[SCENARIO_HEADER] == expected.encode()


def legitimate(events: list[SimulatedEvent]) -> list[TransactionV1]:
    return [TransactionV1.model_validate_json(e.value) for e in of_kind(events, "scored") if not e.truth.positive]


def online_share(transactions: list[TransactionV1]) -> float:
    return sum(t.channel == "card_not_present" for t in transactions) / len(transactions)


def test_covariate_shift_raises_amounts_and_online_share_after_the_onset_only() -> None:
    before = legitimate(before_onset(run("covariate_shift")))
    after = legitimate(after_onset(run("covariate_shift")))
    amount_ratio = median([t.amount for t in after]) / median([t.amount for t in before])
    assert 1.5 < amount_ratio < 2.2
    assert online_share(after) - online_share(before) > 0.2


def test_without_a_shift_the_same_comparison_finds_nothing() -> None:
    before = legitimate(before_onset(run("baseline")))
    after = legitimate(after_onset(run("baseline")))
    amount_ratio = median([t.amount for t in after]) / median([t.amount for t in before])
    assert 0.85 < amount_ratio < 1.18
    assert abs(online_share(after) - online_share(before)) < 0.05


def test_covariate_shift_changes_legitimate_amounts_by_its_multiplier_and_nothing_else() -> None:
    baseline = {t.event_id: t for t in legitimate(after_onset(run("baseline")))}
    shifted = legitimate(after_onset(run("covariate_shift")))
    assert len(shifted) > 3_000
    for transaction in shifted:
        original = baseline[transaction.event_id]
        assert transaction.amount == pytest.approx(original.amount * COVARIATE_SHIFT_AMOUNT_MULTIPLIER, abs=0.02)
        assert (transaction.user_id, transaction.merchant_id, transaction.country) == (
            original.user_id,
            original.merchant_id,
            original.country,
        )
        if original.channel == "card_not_present":
            assert transaction.channel == "card_not_present"


def test_concept_drift_brings_cloned_cards_after_the_onset_only() -> None:
    fraud = [e for e in of_kind(run("concept_drift"), "scored") if e.truth.positive]
    cloned = [e for e in fraud if e.truth.cause == "cloned_card"]
    assert len(cloned) >= 20
    assert all(e.event_time >= ONSET for e in cloned)
    for event in cloned:
        transaction = TransactionV1.model_validate_json(event.value)
        assert transaction.channel == "card_present"
    assert not [e for e in of_kind(run("baseline"), "scored") if e.truth.cause == "cloned_card"]


def chargeback_delays_days(events: list[SimulatedEvent]) -> list[float]:
    return [
        (e.truth.label_due - e.event_time).total_seconds() / 86_400
        for e in of_kind(events, "scored")
        if e.truth.positive and e.truth.label_due is not None
    ]


def test_label_delay_change_lengthens_chargeback_delays_after_the_onset() -> None:
    before = chargeback_delays_days(before_onset(run("label_delay_change")))
    after = chargeback_delays_days(after_onset(run("label_delay_change")))
    assert len(before) > 30
    assert len(after) > 30
    assert median(after) > 2 * median(before)


def test_without_a_delay_change_chargeback_delays_stay_alike() -> None:
    before = chargeback_delays_days(before_onset(run("baseline")))
    after = chargeback_delays_days(after_onset(run("baseline")))
    assert 0.6 < median(after) / median(before) < 1.6


def cloned_card_share(events: list[SimulatedEvent]) -> float:
    transactions = of_kind(events, "scored")
    return sum(e.truth.cause == "cloned_card" for e in transactions) / len(transactions)


def test_fraud_wave_is_the_covariate_shift_with_a_larger_cloned_card_wave() -> None:
    wave = run("fraud_wave")
    assert not [e for e in before_onset(wave) if e.truth.cause == "cloned_card"]
    share = cloned_card_share(after_onset(wave))
    assert share == pytest.approx(FRAUD_WAVE_CLONED_CARD_SHARE, rel=0.35)
    assert share > 2 * cloned_card_share(after_onset(run("concept_drift")))
    before, after = legitimate(before_onset(wave)), legitimate(after_onset(wave))
    assert online_share(after) > online_share(before) + 0.15
    assert median([t.amount for t in after]) > 1.4 * median([t.amount for t in before])
