"""Fraud: its rate, its patterns, and how much of it is never labelled."""

from __future__ import annotations

import collections

import pytest
from usecases.fraud.tests.simulator.streams import of_kind, run

from berg_fraud.contracts import TransactionV1
from berg_fraud.simulator.profiles import FRAUD_SOURCE_COUNTRIES, HOME_COUNTRIES

pytestmark = pytest.mark.unit

HIGH_RISK_CATEGORIES = {"4829", "6051", "7995", "5967"}


def test_the_baseline_fraud_rate_is_between_one_half_and_two_and_a_half_percent() -> None:
    transactions = of_kind(run(), "scored")
    rate = sum(e.truth.positive for e in transactions) / len(transactions)
    assert 0.005 < rate < 0.025


def test_a_long_baseline_run_has_every_baseline_pattern_and_nothing_else() -> None:
    patterns = collections.Counter(e.truth.cause for e in of_kind(run(), "scored") if e.truth.positive)
    assert set(patterns) == {"account_takeover", "card_testing", "high_risk_merchant"}
    assert all(count >= 5 for count in patterns.values())


def test_a_fifth_of_fraud_is_never_labelled() -> None:
    fraud = [e for e in of_kind(run(), "scored") if e.truth.positive]
    unlabelled = sum(e.truth.label_due is None for e in fraud) / len(fraud)
    assert 0.1 < unlabelled < 0.3


def _by_pattern() -> dict[str | None, list[TransactionV1]]:
    grouped: dict[str | None, list[TransactionV1]] = collections.defaultdict(list)
    for event in of_kind(run(), "scored"):
        grouped[event.truth.cause].append(TransactionV1.model_validate_json(event.value))
    return grouped


def test_account_takeovers_are_large_online_payments_from_abroad() -> None:
    grouped = _by_pattern()
    legitimate_median = sorted(t.amount for t in grouped[None])[len(grouped[None]) // 2]
    for transaction in grouped["account_takeover"]:
        assert transaction.channel == "card_not_present"
        assert transaction.amount > legitimate_median
    assert any(t.country in FRAUD_SOURCE_COUNTRIES for t in grouped["account_takeover"])


def test_card_testing_is_tiny_online_amounts() -> None:
    for transaction in _by_pattern()["card_testing"]:
        assert transaction.channel == "card_not_present"
        assert 0.5 <= transaction.amount <= 2.0


def test_high_risk_merchant_fraud_happens_at_high_risk_categories() -> None:
    for transaction in _by_pattern()["high_risk_merchant"]:
        assert transaction.merchant_category in HIGH_RISK_CATEGORIES
        assert transaction.channel == "card_not_present"


def test_legitimate_payments_are_mostly_at_home() -> None:
    legitimate = _by_pattern()[None]
    countries = {t.country for t in legitimate}
    assert countries <= set(HOME_COUNTRIES)
    # Nobody lives in a fraud source country, so those appear only in fraud.
    assert not countries & set(FRAUD_SOURCE_COUNTRIES)
