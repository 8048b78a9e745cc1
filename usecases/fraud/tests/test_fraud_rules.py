"""The fraud case's value rules (berg_fraud.rules): one definition, checked on one event at a given clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from berg.contracts.rules import (
    NotAfterClock,
    OneOf,
    PositiveAtMost,
    Unique,
    duplicated,
    json_schema_with_rules,
    violations,
)
from berg_fraud.contracts import LabelV1, TransactionV1
from berg_fraud.rules import FraudRules

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
RULES = FraudRules()


def transaction(**overrides: Any) -> TransactionV1:
    fields: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_time": NOW.isoformat(),
        "user_id": "user-001",
        "merchant_id": "merchant-042",
        "amount": 12.5,
        "currency": "EUR",
        "merchant_category": "5411",
        "channel": "card_present",
        "country": "DE",
    }
    fields.update(overrides)
    return TransactionV1.model_validate(fields)


def fields_broken(event: TransactionV1, now: datetime = NOW, rules: FraudRules = RULES) -> list[str]:
    return [violation.field for violation in violations(rules.value_rules("transactions"), event, now)]


def test_a_valid_transaction_breaks_no_rule() -> None:
    assert fields_broken(transaction()) == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": 0.0}, "amount"),
        ({"amount": -0.01}, "amount"),
        ({"amount": RULES.max_amount + 0.01}, "amount"),
        ({"event_time": (NOW + RULES.clock_skew + timedelta(microseconds=1)).isoformat()}, "event_time"),
        ({"event_time": "2030-01-01T00:00:00Z"}, "event_time"),
        ({"currency": "XXX"}, "currency"),
        ({"merchant_category": "0000"}, "merchant_category"),
    ],
)
def test_each_rule_names_its_field(overrides: dict[str, Any], field: str) -> None:
    assert fields_broken(transaction(**overrides)) == [field]


def test_the_bounds_are_inclusive_where_validation_is() -> None:
    at_the_bounds = transaction(amount=RULES.max_amount, event_time=(NOW + RULES.clock_skew).isoformat())
    assert fields_broken(at_the_bounds) == []
    assert fields_broken(transaction(amount=5e-324)) == []


def test_the_clock_is_the_checkers() -> None:
    event = transaction(event_time="2030-01-01T00:00:00Z")
    assert fields_broken(event, now=datetime(2029, 12, 31, 23, 56, tzinfo=UTC)) == []
    assert fields_broken(event, now=datetime(2029, 12, 31, 23, 54, tzinfo=UTC)) == ["event_time"]
    with pytest.raises(ValueError, match="timezone-aware"):
        violations(RULES.value_rules("transactions"), event, datetime(2029, 12, 31))


def test_the_parameters_move_the_rules() -> None:
    rules = FraudRules(
        clock_skew_s=0, max_amount=10, currencies=frozenset({"USD"}), merchant_categories=frozenset({"5411"})
    )
    event = transaction(amount=10.5, currency="EUR", event_time=(NOW + timedelta(seconds=1)).isoformat())
    assert fields_broken(event, rules=rules) == ["amount", "event_time", "currency"]
    assert rules.latest_event_time(NOW) == NOW


def test_the_rules_in_order_for_both_contracts() -> None:
    assert [(type(rule), rule.field) for rule in RULES.value_rules("transactions")] == [
        (PositiveAtMost, "amount"),
        (NotAfterClock, "event_time"),
        (OneOf, "currency"),
        (OneOf, "merchant_category"),
        (OneOf, "channel"),
        (Unique, "event_id"),
    ]
    assert [(type(rule), rule.field) for rule in RULES.value_rules("labels")] == [
        (NotAfterClock, "event_time"),
        (OneOf, "source"),
        (Unique, "event_id"),
    ]


def test_a_label_from_the_future_breaks_the_clock_rule() -> None:
    label = LabelV1(
        event_id=uuid.uuid4(),
        event_time=NOW + timedelta(days=1),
        transaction_event_id=uuid.uuid4(),
        user_id="user-001",
        is_fraud=True,
    )
    assert [violation.field for violation in violations(RULES.value_rules("labels"), label, NOW)] == ["event_time"]


def test_every_copy_of_a_duplicated_event_id_is_named() -> None:
    first, other = transaction(), transaction()
    copy = first.model_copy()
    found = duplicated(RULES.value_rules("transactions"), [first, other, copy])
    assert sorted(found) == [0, 2]
    assert found[0].field == "event_id"
    assert "appears 2 times" in found[0].message
    assert duplicated(RULES.value_rules("transactions"), [first, other]) == {}


@pytest.mark.parametrize(
    "values",
    [
        {"clock_skew_s": -1},
        {"max_amount": 0},
        {"max_amount": 2_000_000},
        {"currencies": frozenset({"euro"})},
        {"merchant_categories": frozenset()},
    ],
)
def test_parameters_out_of_range_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FraudRules.model_validate(values)


def test_the_json_schema_says_the_bounds_and_the_known_sets() -> None:
    rules = FraudRules(max_amount=500, currencies=frozenset({"EUR", "USD"}))
    schema = json_schema_with_rules(TransactionV1, rules.value_rules("transactions"))
    properties = schema["properties"]
    assert (properties["amount"]["exclusiveMinimum"], properties["amount"]["maximum"]) == (0, 500)
    assert properties["currency"]["enum"] == ["EUR", "USD"]
    assert set(properties["merchant_category"]["enum"]) == set(rules.merchant_categories)
    assert "event_time at most 300s ahead" in schema["description"]
    assert "enum" not in TransactionV1.model_json_schema()["properties"]["currency"]  # the contract's own is untouched
