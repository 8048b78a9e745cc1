"""The clicks case's value rules (berg_clicks.rules), checked on one impression at a given clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from berg.contracts.rules import NotAfterClock, OneOf, PositiveAtMost, Unique, violations
from berg_clicks.contracts import ImpressionV1
from berg_clicks.rules import ClicksRules

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RULES = ClicksRules()


def impression(**overrides: Any) -> ImpressionV1:
    fields: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_time": NOW.isoformat(),
        "viewer_id": "viewer-00001",
        "campaign_id": "campaign-007",
        "placement": "feed",
        "device": "mobile",
        "bid": 0.42,
        "slot": 0,
    }
    return ImpressionV1.model_validate({**fields, **overrides})


def test_the_rules_of_both_streams_in_order() -> None:
    assert [(type(rule), rule.field) for rule in RULES.value_rules("impressions")] == [
        (PositiveAtMost, "bid"),
        (OneOf, "placement"),
        (NotAfterClock, "event_time"),
        (Unique, "event_id"),
    ]
    assert [(type(rule), rule.field) for rule in RULES.value_rules("clicks")] == [
        (NotAfterClock, "event_time"),
        (Unique, "event_id"),
    ]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({}, None),
        ({"bid": 0.0}, "bid"),
        ({"bid": RULES.max_bid + 0.01}, "bid"),
        ({"placement": "popup"}, "placement"),
        ({"event_time": (NOW + RULES.clock_skew + timedelta(seconds=1)).isoformat()}, "event_time"),
    ],
)
def test_each_rule_names_its_field(overrides: dict[str, Any], field: str | None) -> None:
    broken = [
        violation.field for violation in violations(RULES.value_rules("impressions"), impression(**overrides), NOW)
    ]
    assert broken == ([] if field is None else [field])


@pytest.mark.parametrize("overrides", [{"slot": -1}, {"device": "smart_tv"}, {"bid": "0.42"}, {"viewer_id": ""}])
def test_the_contract_refuses_what_no_rule_needs_to(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        impression(**overrides)
