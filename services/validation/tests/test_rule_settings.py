"""Rule settings: validated once, with defaults that fit simulated traffic."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from berg_fraud.contracts import MAX_AMOUNT
from berg_fraud.reference import MERCHANT_CATEGORY_CODES as DEFAULT_MERCHANT_CATEGORIES
from berg_fraud.rules import FraudBatchBounds, FraudRules

pytestmark = pytest.mark.unit


def test_defaults() -> None:
    settings = FraudRules()
    assert settings.clock_skew == timedelta(minutes=5)
    assert settings.max_amount == MAX_AMOUNT
    assert {"5411", "5812", "5999", "4829", "6011", "7995"} <= settings.merchant_categories
    assert settings.merchant_categories == DEFAULT_MERCHANT_CATEGORIES
    assert "EUR" in settings.currencies


@pytest.mark.parametrize(
    "values",
    [
        {"clock_skew_s": -1},
        {"merchant_categories": ["5411", "groceries"]},
        {"merchant_categories": []},
        {"currencies": ["eur"]},
        {"max_amount": MAX_AMOUNT * 2},
        {"max_amount": 0},
        {"typo": 1},
        {"batch": {"amount_mean": [100, 1]}},
        {"batch": {"card_not_present_share": [0.1, 1.5]}},
        {"batch": {"max_null_share": 2}},
        {"batch": {"min_rows": 0}},
    ],
)
def test_bad_values_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FraudRules.model_validate(values)


def test_values_from_json_lists_as_the_environment_gives_them() -> None:
    settings = FraudRules.model_validate(
        {"merchant_categories": ["5411", "5812"], "batch": {"amount_mean": [2, 300], "min_rows": 50}}
    )
    assert settings.merchant_categories == frozenset({"5411", "5812"})
    assert settings.batch == FraudBatchBounds(amount_mean=(2.0, 300.0), min_rows=50)
