"""The clicks use case as the platform loads it: through its entry point, by name, beside fraud."""

from __future__ import annotations

import pytest

from berg.simulator.traffic import TrafficSimulator
from berg.usecase import installed_use_cases, load_use_case
from berg_clicks.attribution import ATTRIBUTION_WINDOW
from berg_clicks.contracts import ClickV1, ImpressionV1
from berg_clicks.rules import ClicksRules
from berg_clicks.simulator import ClicksSimulator
from berg_clicks.simulator.process import PLACEMENT_WEIGHTS
from berg_clicks.use_case import clicks

pytestmark = pytest.mark.unit


def test_the_platform_finds_the_clicks_case_by_name_and_it_is_the_packages_own() -> None:
    assert {"clicks", "fraud"} <= set(installed_use_cases())
    found = load_use_case("clicks")
    assert found == clicks()
    assert found.card.ref == "clicks@v1"
    assert (found.scored.contract, found.labels.contract) == (ImpressionV1, ClickV1)
    assert found.label_join.target == found.card.target.column == "clicked"
    assert found.rules is ClicksRules
    assert isinstance(found.simulator, ClicksSimulator)


def test_its_shape_differs_from_the_reference_cases_where_the_seams_are() -> None:
    mine, reference = load_use_case("clicks"), load_use_case("fraud")
    assert mine.scored.key == "viewer_id" != reference.scored.key
    assert {entity.key for entity in mine.features.entities} == {"viewer_id", "campaign_id"}
    assert not set(mine.topics) & set(reference.topics)
    assert mine.features.service != reference.features.service
    assert mine.card.costs.currency != reference.card.costs.currency
    assert mine.card.baseline.features == ("campaign_click_rate_1d",)


def test_the_card_says_labels_come_within_the_attribution_window() -> None:
    target = clicks().card.target
    assert ATTRIBUTION_WINDOW.total_seconds() == 30 * 60
    assert "30-minute attribution window" in " ".join(target.definition.split())
    # The card counts its horizon in days; every label is in long before the first one ends.
    assert target.label_horizon_days * 86_400 > ATTRIBUTION_WINDOW.total_seconds()


def test_the_simulator_is_one_the_platform_can_drive() -> None:
    simulator: TrafficSimulator = ClicksSimulator()
    assert simulator.scenarios[0] == "baseline"
    assert {"malformed", simulator.drift_scenario} <= set(simulator.scenarios)
    assert set(simulator.malformed_classes.values()) == {"ingestion", "validation"}


def test_the_simulator_serves_every_placement_the_rules_know_and_no_other() -> None:
    assert set(PLACEMENT_WEIGHTS) == ClicksRules().placements
