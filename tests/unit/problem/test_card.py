"""The problem card's metric names: a card written before a rename still loads, under the new name."""

from __future__ import annotations

import re

import pytest
import yaml

from berg.problem.card import RENAMED_METRICS, ProblemCard, parse_problem_card
from berg_clicks.use_case import problem_card as clicks_card
from berg_fraud.use_case import problem_card

pytestmark = pytest.mark.unit

CARD = problem_card()


def _with_metrics(primary: str, reported: list[str], promoted_on: str) -> str:
    """The fraud card's YAML with these metric names."""
    as_dict = CARD.model_dump(mode="json")
    as_dict["metrics"] = {"primary": primary, "reported": reported}
    as_dict["promotion"]["metric"] = promoted_on

    return yaml.safe_dump(as_dict)


@pytest.mark.parametrize("shipped", [CARD, clicks_card()], ids=["fraud", "clicks"])
def test_the_shipped_cards_name_the_cost_per_scored_event(shipped: ProblemCard) -> None:
    assert "expected_cost_per_event" in shipped.metrics.reported
    assert not set(shipped.metrics.reported) & set(RENAMED_METRICS)


def test_a_card_naming_the_old_cost_per_transaction_loads_under_the_new_name() -> None:
    old = "expected_cost_per_transaction"
    text = _with_metrics(old, ["pr_auc", old], old)

    with pytest.warns(FutureWarning, match=re.escape("now called 'expected_cost_per_event'")) as caught:
        card = parse_problem_card(text)

    assert card.metrics.primary == "expected_cost_per_event"
    assert card.metrics.reported == ("pr_auc", "expected_cost_per_event")
    assert card.promotion.metric == "expected_cost_per_event"
    assert len(caught) == 3  # one per place the card names it


def test_an_unknown_metric_is_still_refused() -> None:
    with pytest.raises(Exception, match="expected_cost_per_event"):
        parse_problem_card(_with_metrics("pr_auc", ["pr_auc"], "cost_per_nothing"))
