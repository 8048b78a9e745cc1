"""The card's metrics against scikit-learn and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from berg.problem.card import ThresholdPolicy, load_problem_card
from berg.problem.metrics import (
    average_precision,
    calibration_error,
    choose_threshold,
    outcomes_at,
    roc_auc,
    roc_curve,
)
from berg_fraud.use_case import problem_card

pytestmark = pytest.mark.unit

CARD = problem_card()


@st.composite
def scored(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(2, 60))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    # Few distinct values, so ties are common.
    score = np.array(draw(st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5001, 0.9, 1.0]), min_size=n, max_size=n)))
    amount = np.array(draw(st.lists(st.floats(1, 500), min_size=n, max_size=n)))
    return y, score, amount


@settings(max_examples=200, deadline=None)
@given(scored())
def test_ranking_metrics_equal_scikit_learn(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    y, score, _ = data
    if 0 < y.sum() < len(y):
        assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score))
        assert average_precision(y, score) == pytest.approx(average_precision_score(y, score))
    else:
        assert math.isnan(roc_auc(y, score))


@settings(max_examples=200, deadline=None)
@given(scored(), st.floats(0, 0.5))
def test_the_chosen_threshold_is_the_cheapest_allowed_by_brute_force(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], min_precision: float
) -> None:
    y, score, amount = data
    policy = ThresholdPolicy(policy="min_expected_cost", min_precision=min_precision)
    chosen = choose_threshold(policy, CARD.costs, y, score, amount)
    nothing = outcomes_at(CARD.costs, y, score, amount, 2.0)
    candidates = [outcomes_at(CARD.costs, y, score, amount, float(t)) for t in np.unique(score)]
    allowed = [o for o in candidates if o.precision >= min_precision] + [nothing]
    assert chosen.expected_cost == pytest.approx(min(o.expected_cost for o in allowed))


def test_outcomes_count_costs_as_the_card_says() -> None:
    y = np.array([1, 1, 0, 0])
    score = np.array([0.9, 0.2, 0.8, 0.1])
    amount = np.array([100.0, 40.0, 10.0, 10.0])
    outcome = outcomes_at(CARD.costs, y, score, amount, 0.5)
    assert (outcome.true_positives, outcome.false_positives, outcome.true_negatives, outcome.false_negatives) == (
        1,
        1,
        1,
        1,
    )
    costs = CARD.costs
    expected = costs.true_positive + costs.false_positive + costs.false_negative_fixed + 40.0
    assert outcome.expected_cost == pytest.approx(expected)
    assert (outcome.positive_amount_caught, outcome.positive_amount_missed) == (100.0, 40.0)
    assert outcome.precision == 0.5
    assert outcome.recall == 0.5


def test_roc_curve_runs_from_origin_to_one() -> None:
    fpr, tpr, thresholds = roc_curve([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.35])
    assert (fpr[0], tpr[0]) == (0.0, 0.0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert thresholds == sorted(thresholds, reverse=True)


def test_a_perfectly_calibrated_score_has_no_calibration_error() -> None:
    y = np.array([1] * 2 + [0] * 8 + [1] * 8 + [0] * 2)
    score = np.array([0.2] * 10 + [0.8] * 10)
    assert calibration_error(y, score) == pytest.approx(0.0)
    assert calibration_error(y, 1 - score) == pytest.approx(0.6)


def test_the_reference_card_loads_and_refuses_unknown_fields(tmp_path) -> None:
    assert CARD.ref == "fraud@v1"
    assert CARD.target.label_horizon_days == 30
    broken = tmp_path / "card.yaml"
    broken.write_text("name: fraud\nversion: 1\nsurprise: true\n")
    with pytest.raises(Exception, match="surprise"):
        load_problem_card(broken)
