"""Decisions from a score and the model's threshold: approve below, review in the band, decline above."""

from __future__ import annotations

import pytest

from berg_serving.decisions import DecisionPolicy

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("score", "decision"),
    [(0.0, "approve"), (0.299, "approve"), (0.3, "review"), (0.89, "review"), (0.9, "decline"), (1.0, "decline")],
)
def test_bands(score: float, decision: str) -> None:
    assert DecisionPolicy(decline_at=0.9).decide(score, threshold=0.3) == decision


def test_a_threshold_above_decline_at_declines_from_the_threshold() -> None:
    policy = DecisionPolicy(decline_at=0.5)
    assert policy.decide_all([0.59, 0.6, 0.7], threshold=0.6) == ["approve", "decline", "decline"]


def test_a_nan_score_is_reviewed_never_approved() -> None:
    assert DecisionPolicy().decide(float("nan"), threshold=0.3) == "review"


def test_decline_at_is_a_probability() -> None:
    with pytest.raises(ValueError, match="decline_at"):
        DecisionPolicy(decline_at=1.5)
