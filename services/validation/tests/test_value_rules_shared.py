"""Validation applies the use case's value rules, the ones serving applies: one definition, two engines.

The catalogue's row-level value expectations are made from ``FraudRules.value_rules(kind)``
(the fraud case's, as an example), and on the same rows, at the same clock and under the same settings,
both engines dead-letter exactly the rows the rules' own check (serving's) refuses.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from services.validation.tests.helpers import NOW, STREAM, STREAMS, TransactionFactory, transactions_frame

from berg.contracts.rules import ContractRules, duplicated, violations
from berg_fraud.rules import FraudRules
from berg_validation.catalogue import build_catalogue
from berg_validation.pandas_rules import PandasRules
from berg_validation.suites import build_suites, create_context

pytestmark = pytest.mark.unit

SETTINGS = FraudRules(
    clock_skew_s=60, max_amount=5_000, currencies=frozenset({"EUR", "USD"}), merchant_categories=frozenset({"5411"})
)


@pytest.mark.parametrize("kind", ["transactions", "labels"])
def test_the_value_expectations_are_the_shared_rules_in_order(kind: Any) -> None:
    rules = SETTINGS.value_rules(kind)
    structure = {"expect_column_values_to_not_be_null", "expect_column_values_to_be_of_type"}
    value_expectations = [
        rule for rule in build_catalogue(STREAM[kind], SETTINGS).at("row") if rule.expectation_type not in structure
    ]
    assert [rule.column for rule in value_expectations] == [rule.field for rule in rules]


def test_the_expectations_carry_the_shared_parameters() -> None:
    by_name = {rule.name: rule for rule in build_catalogue(STREAM["transactions"], SETTINGS).rules}
    amount = by_name["expect_column_values_to_be_between(amount)"].kwargs
    assert (amount["min_value"], amount["strict_min"], amount["max_value"]) == (0.0, True, 5_000)
    assert by_name["expect_column_values_to_be_in_set(currency)"].kwargs["value_set"] == ["EUR", "USD"]
    assert by_name["expect_column_values_to_be_in_set(merchant_category)"].kwargs["value_set"] == ["5411"]
    assert isinstance(SETTINGS, ContractRules)


def test_both_engines_refuse_exactly_the_rows_the_shared_check_refuses(transaction: TransactionFactory) -> None:
    skew = SETTINGS.clock_skew
    overrides: list[dict[str, Any]] = [
        {},
        {"amount": 0.0},
        {"amount": -1.0},
        {"amount": 5_000.0},
        {"amount": 5_000.01},
        {"event_time": NOW + skew},
        {"event_time": NOW + skew + timedelta(microseconds=1)},
        {"event_time": NOW - timedelta(days=400)},
        {"currency": "USD", "merchant_category": "5411"},
        {"currency": "GBP"},
        {"merchant_category": "5412"},
        {"channel": "card_not_present"},
    ]
    defaults = {"currency": "EUR", "merchant_category": "5411", "amount": 10.0}
    events = [transaction(**{**defaults, **override}) for override in overrides]
    events.append(events[3].model_copy())  # the same event id twice
    rules = SETTINGS.value_rules("transactions")
    by_the_shared_check = {i for i, event in enumerate(events) if violations(rules, event, NOW)}
    by_the_shared_check |= set(duplicated(rules, events))
    assert by_the_shared_check == {1, 2, 4, 6, 9, 10, 3, 12}
    frame = transactions_frame(events)
    for engine in (build_suites(create_context(), STREAMS, SETTINGS), PandasRules(STREAMS, SETTINGS)):
        assert set(engine.validate(frame, "transactions", NOW).row_failures) == by_the_shared_check
