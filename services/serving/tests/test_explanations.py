"""Reason codes, pure: ranking, the top_k bounds, missing values as null, the answer's arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from berg_serving.explanations import (
    DEFAULT_TOP_K,
    TOP_K_HEADER,
    Contributions,
    Explained,
    FeatureReason,
    TopKError,
    check_top_k,
    explanation_response,
    feature_reasons,
    rank_reasons,
    top_k_of,
)
from berg_serving.predictions import Scores

pytestmark = pytest.mark.unit


def test_reasons_rank_by_contribution_toward_the_positive_class_ties_by_name() -> None:
    reasons = feature_reasons(["a", "b", "c", "d", "e"], [1.0, 2.0, 3.0, 4.0, 5.0], [-0.5, 0.2, 1.5, 0.2, -2.0])
    assert [r.feature for r in rank_reasons(reasons, 5)] == ["c", "b", "d", "a", "e"]
    assert rank_reasons(reasons, 2) == [FeatureReason("c", 3.0, 1.5), FeatureReason("b", 2.0, 0.2)]
    assert [r.feature for r in rank_reasons(reasons, 1)] == ["c"]


def test_every_reason_negative_still_ranks_the_least_negative_first() -> None:
    reasons = feature_reasons(["x", "y"], [0.0, 0.0], [-3.0, -0.1])
    assert [r.feature for r in rank_reasons(reasons, 2)] == ["y", "x"]


def test_a_missing_value_is_none_not_nan() -> None:
    reasons = feature_reasons(["x", "y", "z"], [math.nan, 2.5, math.inf], [0.1, 0.2, 0.3])
    assert [r.value for r in reasons] == [None, 2.5, None]
    assert reasons[0].as_json() == {"feature": "x", "value": None, "contribution": 0.1}


@pytest.mark.parametrize("top_k", [0, -1, 4, True, 2.0])
def test_top_k_outside_one_to_the_feature_count_is_refused(top_k: object) -> None:
    reasons = feature_reasons(["x", "y", "z"], [1.0, 2.0, 3.0], [0.1, 0.2, 0.3])
    with pytest.raises(TopKError, match="top_k must be an integer from 1 to 3"):
        rank_reasons(reasons, top_k)  # type: ignore[arg-type]


def test_top_k_bounds() -> None:
    assert check_top_k(1, 1) == 1
    assert check_top_k(17, 17) == 17
    with pytest.raises(TopKError):
        check_top_k(18, 17)


@pytest.mark.parametrize(
    ("headers", "expected"), [(None, DEFAULT_TOP_K), ({}, DEFAULT_TOP_K), ({TOP_K_HEADER: "5"}, 5)]
)
def test_top_k_of_the_request(headers: dict[str, str] | None, expected: int) -> None:
    assert top_k_of(headers) == expected


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", "", "٣"])
def test_top_k_of_the_request_must_be_a_positive_integer(text: str) -> None:
    with pytest.raises(TopKError, match="top_k must be a positive integer"):
        top_k_of({TOP_K_HEADER: text})


def test_the_contributions_must_fit_the_rows_and_features() -> None:
    with pytest.raises(ValueError, match="contributions of shape"):
        Contributions(("a", "b"), np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="2 features, 1 values"):
        feature_reasons(["a", "b"], [1.0], [0.1, 0.2])


def test_the_answer_carries_score_margin_bias_all_contributions_and_the_top_reasons() -> None:
    contributions = Contributions(("amount", "count"), np.array([[0.75, -0.25], [-1.0, 0.5]]), np.array([-2.0, -2.0]))
    explained = Explained(Scores("v0007", 0.4, [0.18, 0.08], ["approve", "approve"]), contributions)
    values = {"amount": np.array([120.0, 5.0]), "count": np.array([np.nan, 3.0]), "unused": np.array([1.0, 1.0])}
    answer = explanation_response(explained, values, ["e1", "e2"], model_name="m", top_k=1)
    assert answer["model_name"] == "m"
    assert answer["model_version"] == "v0007"
    assert answer["top_k"] == 1
    first, second = answer["explanations"]
    assert first == {
        "scored_event_id": "e1",
        "score": 0.18,
        "decision": "approve",
        "threshold": 0.4,
        "margin": -1.5,
        "bias": -2.0,
        "reasons": [{"feature": "amount", "value": 120.0, "contribution": 0.75}],
        "contributions": [
            {"feature": "amount", "value": 120.0, "contribution": 0.75},
            {"feature": "count", "value": None, "contribution": -0.25},
        ],
    }
    assert second["margin"] == -2.5
    assert second["reasons"] == [{"feature": "count", "value": 3.0, "contribution": 0.5}]
    with pytest.raises(TopKError):
        explanation_response(explained, values, ["e1", "e2"], model_name="m", top_k=3)
