"""The generic value and batch rules (berg.contracts.rules and .batch_rules), on a use case of another domain."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ConfigDict, ValidationError

from berg.contracts.batch_rules import BatchBounds, QuantilesBetween
from berg.contracts.rules import (
    ContractRules,
    NotAfterClock,
    OneOf,
    PositiveAtMost,
    Unique,
    ValueRule,
    duplicated,
    json_schema_with_rules,
    violations,
)
from berg.features.aggregation import AggregationView, WindowedAggregate
from berg.usecase import UseCaseError
from berg_clicks.contracts import ImpressionV1
from berg_clicks.rules import ClicksRules
from berg_clicks.use_case import clicks
from tests.use_cases import impression

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def test_a_stream_the_rules_do_not_declare_gets_the_rules_every_event_shares() -> None:
    rules = ContractRules(clock_skew_s=60)
    assert rules.value_rules("anything") == (NotAfterClock("event_time", timedelta(seconds=60)), Unique("event_id"))
    assert rules.batch_rules("anything") == ()


def test_declared_rules_come_in_their_order_and_name_the_fields_an_event_breaks() -> None:
    rules = ClicksRules(max_bid=5.0, placements=frozenset({"feed"}))
    assert [(type(rule), rule.field) for rule in rules.value_rules("impressions")] == [
        (PositiveAtMost, "bid"),
        (OneOf, "placement"),
        (NotAfterClock, "event_time"),
        (Unique, "event_id"),
    ]
    late = impression(1, NOW + timedelta(hours=1), bid=6.0, placement="search")
    assert [v.field for v in violations(rules.value_rules("impressions"), late, NOW)] == [
        "bid",
        "placement",
        "event_time",
    ]
    first = impression(1, NOW)
    assert sorted(duplicated(rules.value_rules("impressions"), [first, impression(2, NOW), first])) == [0, 2]


def test_the_json_schema_of_any_contract_carries_its_rules() -> None:
    rules = ClicksRules(max_bid=5.0)
    schema = json_schema_with_rules(ImpressionV1, rules.value_rules("impressions"))
    assert schema["properties"]["bid"]["maximum"] == 5.0
    assert schema["properties"]["placement"]["enum"] == ["feed", "search", "sidebar"]
    assert "event_id unique within a request" in schema["description"]


def test_a_use_case_whose_rule_names_no_field_of_its_stream_is_refused_by_name() -> None:
    class Misspelt(ClicksRules):
        model_config = ConfigDict(extra="forbid", frozen=True)

        def declare_value_rules(self) -> Mapping[str, tuple[ValueRule, ...]]:
            return {"impressions": (PositiveAtMost("price", 1.0),)}

    with pytest.raises(UseCaseError, match="a rule of stream 'impressions' names 'price', no field of ImpressionV1"):
        dataclasses.replace(clicks(), rules=Misspelt)


def test_a_use_case_whose_features_read_no_field_of_its_scored_stream_are_refused_by_name() -> None:
    view = AggregationView(
        "viewer_aggregates",
        "viewer_id",
        "as_of_unix",
        (WindowedAggregate("price_max_1h", "max", timedelta(hours=1), field="price"),),
    )
    features = clicks().features
    streaming = dataclasses.replace(features.streaming[0], aggregation=view)
    with pytest.raises(UseCaseError, match="feature view 'viewer_aggregates' reads 'price', no field of Impr"):
        dataclasses.replace(clicks(), features=dataclasses.replace(features, streaming=(streaming,), on_demand=None))
    with pytest.raises(UseCaseError, match="feature view 'the request features' reads 'price', no field of Impr"):
        dataclasses.replace(clicks(), features=dataclasses.replace(features, request_features=("price",)))
    fine = dataclasses.replace(
        view, aggregates=(WindowedAggregate("bid_max_1h", "max", timedelta(hours=1), field="bid"),)
    )
    described = dataclasses.replace(
        clicks(),
        features=dataclasses.replace(
            features, streaming=(dataclasses.replace(streaming, aggregation=fine),), on_demand=None
        ),
    )
    assert described.features.aggregations == (fine,)


def test_bounds_that_cannot_hold_are_refused() -> None:
    with pytest.raises(ValidationError):
        BatchBounds(max_null_share=1.5)
    with pytest.raises(ValidationError, match=r"lower bound 3\.0 is above upper bound 1\.0"):
        ClicksRules.model_validate({"batch": {"bid_mean": [3, 1]}})
    with pytest.raises(ValueError, match="2 quantiles but 1 ranges"):
        QuantilesBetween("bid", (0.05, 0.95), ((0.0, 1.0),))
