"""Drift and quality statistics against independent references: np.histogram, scipy, scikit-learn, brute force."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp
from sklearn.metrics import average_precision_score, precision_score, recall_score

from berg.problem.card import Costs
from berg_fraud.use_case import problem_card
from berg_monitoring.statistics import (
    BinnedReference,
    DistributionReference,
    ProfileError,
    ReferenceProfile,
    ReferenceSample,
    calibration_error,
    enough_labels,
    feature_drift,
    ks_statistic,
    psi,
    quality_summary,
)
from berg_pipelines.runtime.profile import distribution_profile, reference_profile

pytestmark = pytest.mark.unit

COSTS = problem_card().costs
# The documented floor of an empty bin's share (a spec of psi, written out here on purpose).
FLOOR = 1e-4


def oracle_psi(edges: list[float], shares: list[float], missing_share: float, values: np.ndarray) -> float:
    """PSI by np.histogram on the same edges (outer bins open to +-inf) plus a missing bin, term by term."""
    finite = values[np.isfinite(values)]
    counts, _ = np.histogram(finite, bins=np.array([-np.inf, *edges, np.inf]))
    actual = [*(counts / len(values)), (len(values) - len(finite)) / len(values)]
    expected = [*shares, missing_share]
    total = 0.0
    for a, e in zip(actual, expected, strict=True):
        a, e = max(a, FLOOR), max(e, FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def oracle_ks(sample: np.ndarray, values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    # Only the statistic is compared; scipy's p-value warns on some sizes (tiny samples, exact mode).
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(ks_2samp(sample, finite).statistic)


def live_window(rng: np.random.Generator, size: int, shift: float, missing: float, grid: np.ndarray) -> np.ndarray:
    """Normal values (shifted), a third of them snapped onto ``grid`` (ties with edges and sample), some NaN/inf."""
    values = rng.normal(shift, 1.0, size)
    if len(grid):
        snapped = rng.random(size) < 0.33
        values[snapped] = rng.choice(grid, int(snapped.sum()))
    holes = rng.random(size) < missing
    values[holes] = rng.choice([np.nan, np.inf, -np.inf], int(holes.sum()))
    return values


# --- PSI -------------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bins=st.integers(1, 10),
    size=st.integers(1, 400),
    shift=st.floats(-2, 2),
    missing=st.sampled_from([0.0, 0.05, 0.5]),
)
def test_psi_equals_a_histogram_on_the_same_edges(
    seed: int, bins: int, size: int, shift: float, missing: float
) -> None:
    rng = np.random.default_rng(seed)
    edges = np.unique(np.round(rng.normal(0, 1, bins - 1), 2))
    weights = rng.dirichlet(np.ones(len(edges) + 2))
    # Some reference bins empty, so the floor matters on both sides.
    weights[rng.random(len(weights)) < 0.2] = 0.0
    weights = weights / weights.sum() if weights.sum() else np.r_[1.0, np.zeros(len(weights) - 1)]
    shares, missing_share = weights[:-1].tolist(), float(weights[-1])
    values = live_window(rng, size, shift, missing, edges)
    reference = BinnedReference.from_profile(
        {"edges": edges.tolist(), "shares": shares, "missing_share": missing_share}
    )

    expected = oracle_psi(edges.tolist(), shares, missing_share, values)
    assert psi(reference, values) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    combined = DistributionReference(reference, ReferenceSample(rng.normal(0, 1, 50))).drift(values)
    assert combined.psi == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert combined.rows == size
    assert combined.missing_share == pytest.approx(np.mean(~np.isfinite(values)))


def test_psi_of_the_training_data_itself_is_zero() -> None:
    rng = np.random.default_rng(3)
    train = np.r_[rng.gamma(2.0, 40.0, 5000), rng.integers(0, 5, 1000), [np.nan] * 300]
    reference = BinnedReference.from_profile(distribution_profile(train))
    assert psi(reference, train) == pytest.approx(0.0, abs=1e-12)
    assert psi(reference, rng.permutation(train)) == pytest.approx(0.0, abs=1e-12)


def test_psi_two_bins_by_hand() -> None:
    reference = BinnedReference.from_profile({"edges": [0.5], "shares": [0.5, 0.5], "missing_share": 0.0})
    # Live shares 3/4 and 1/4, nothing missing: 0.25 ln(0.75/0.5) - 0.25 ln(0.25/0.5) = 0.25 ln 3.
    assert psi(reference, np.array([0.1, 0.2, 0.3, 0.9])) == pytest.approx(0.25 * math.log(3))
    # A value on an edge belongs to the bin above it: all live values in bin 1, bin 0 empty (floored).
    on_edge = 0.5 * math.log(1.0 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert psi(reference, np.array([0.5, 0.5, 0.7])) == pytest.approx(on_edge)
    # Half the window missing where the reference had none: the missing bin is floored, not dropped.
    half_missing = (0.25 - 0.5) * math.log(0.25 / 0.5) * 2 + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert psi(reference, np.array([0.1, 0.9, np.nan, np.inf])) == pytest.approx(half_missing)


def test_psi_of_an_empty_window_is_nan() -> None:
    reference = BinnedReference.from_profile({"edges": [0.5], "shares": [0.5, 0.5], "missing_share": 0.0})
    assert math.isnan(psi(reference, np.array([])))


def test_a_variable_never_present_in_training_drifts_when_present_live() -> None:
    profile = distribution_profile(np.full(100, np.nan))
    reference = DistributionReference.from_profile(profile)
    assert reference.drift(np.full(10, np.nan)).psi == pytest.approx(0.0)
    drifted = reference.drift(np.ones(10))
    assert drifted.psi == pytest.approx((1.0 - 1e-4) * math.log(1.0 / 1e-4) * 2)
    assert math.isnan(drifted.ks)


# --- KS --------------------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    reference_size=st.integers(1, 300),
    size=st.integers(1, 500),
    shift=st.floats(-1, 1),
    decimals=st.sampled_from([0, 1, 3]),
    missing=st.sampled_from([0.0, 0.1]),
)
def test_ks_equals_scipy_with_ties_and_unequal_sizes(
    seed: int, reference_size: int, size: int, shift: float, decimals: int, missing: float
) -> None:
    rng = np.random.default_rng(seed)
    sample = np.sort(np.round(rng.normal(0, 1, reference_size), decimals))
    values = live_window(rng, size, shift, missing, sample)
    values[np.isfinite(values)] = np.round(values[np.isfinite(values)], decimals)
    if not np.isfinite(values).any():
        values[0] = sample[0]
    expected = oracle_ks(sample, values)

    assert ks_statistic(sample, values) == pytest.approx(expected, abs=1e-12)
    assert ks_statistic(ReferenceSample(sample), values) == pytest.approx(expected, abs=1e-12)
    # drift() (one sort for PSI and KS, with bins beside the sample) gives the same D.
    edges = np.unique(np.round(rng.normal(0, 1, 9), 2))
    bins = BinnedReference(edges=edges, shares=np.full(len(edges) + 1, 1 / (len(edges) + 1)), missing_share=0.0)
    assert DistributionReference(bins, ReferenceSample(sample)).drift(values).ks == pytest.approx(expected, abs=1e-12)


def test_ks_known_answers() -> None:
    assert ks_statistic(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0])) == 1.0
    assert ks_statistic(np.array([4.0, 5.0]), np.array([1.0, 2.0, 3.0])) == 1.0
    assert ks_statistic(np.array([1.0, 2.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0, 2.0, np.nan])) == 0.0
    # At x = 2 the reference CDF is 1/2 and the live one 0; at x = 4, 1 and 1/2.
    assert ks_statistic(np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.0, 4.0, 5.0, 6.0])) == pytest.approx(0.5)


def test_ks_without_values_on_either_side_is_nan() -> None:
    assert math.isnan(ks_statistic(np.array([1.0, 2.0]), np.array([])))
    assert math.isnan(ks_statistic(np.array([1.0, 2.0]), np.array([np.nan, np.inf])))
    assert math.isnan(ks_statistic(np.array([]), np.array([1.0])))


# --- The profile format ----------------------------------------------------------------------------


def test_the_pipeline_marks_watch_only_features_and_monitoring_reads_the_mark() -> None:
    rng = np.random.default_rng(12)
    train = pd.DataFrame({"amount": rng.gamma(2.0, 40.0, 500), "labels_known": rng.integers(0, 60, 500)})
    profile = reference_profile(train, ["amount", "labels_known"], rng.beta(1, 30, 500), watch_only={"labels_known"})
    assert profile["features"]["labels_known"]["retrain_on_drift"] is False
    assert profile["features"]["amount"]["retrain_on_drift"] is True
    assert ReferenceProfile.from_profile(profile).watch_only == {"labels_known"}
    # A profile written before the mark existed: every feature may retrain.
    for feature in profile["features"].values():
        del feature["retrain_on_drift"]
    assert ReferenceProfile.from_profile(profile).watch_only == frozenset()
    profile["features"]["amount"]["retrain_on_drift"] = "no"
    with pytest.raises(ProfileError, match="'amount': retrain_on_drift must be true or false"):
        ReferenceProfile.from_profile(profile)


def test_a_profile_from_the_pipeline_feeds_psi_and_ks() -> None:
    rng = np.random.default_rng(11)
    train = pd.DataFrame(
        {
            "amount": np.where(rng.random(4000) < 0.02, np.nan, rng.gamma(2.0, 40.0, 4000)),
            "count_24h": rng.integers(0, 6, 4000).astype(np.float64),
        }
    )
    scores = rng.beta(1, 30, 4000)
    profile = reference_profile(train, ["amount", "count_24h"], scores)
    reference = ReferenceProfile.from_profile(profile)
    live = np.column_stack(
        [
            np.where(rng.random(3000) < 0.1, np.nan, rng.gamma(2.0, 55.0, 3000)),
            rng.integers(0, 8, 3000).astype(np.float64),
        ]
    )

    drift = feature_drift(reference, live, ["amount", "count_24h"])
    for index, name in enumerate(["amount", "count_24h"]):
        stored = profile["features"][name]
        column = live[:, index]
        expected_psi = oracle_psi(stored["edges"], stored["shares"], stored["missing_share"], column)
        expected_ks = oracle_ks(np.array(stored["sample"]), column)
        assert drift[name].psi == pytest.approx(expected_psi, rel=1e-9)
        assert drift[name].ks == pytest.approx(expected_ks, abs=1e-12)
        assert psi(BinnedReference.from_profile(stored), column) == pytest.approx(expected_psi, rel=1e-9)
        assert ks_statistic(np.array(stored["sample"]), column) == pytest.approx(expected_ks, abs=1e-12)
        assert drift[name].psi > 0.01  # the live window was drawn drifted
    live_scores = rng.beta(1, 10, 2000)
    assert reference.prediction.drift(live_scores).psi == pytest.approx(
        oracle_psi(
            profile["prediction"]["edges"],
            profile["prediction"]["shares"],
            profile["prediction"]["missing_share"],
            live_scores,
        ),
        rel=1e-9,
    )
    assert reference.prediction.drift(scores).psi == pytest.approx(0.0, abs=1e-12)


def test_feature_drift_checks_the_matrix_and_the_names() -> None:
    profile = {"features": {"a": distribution_profile(np.arange(20.0))}, "prediction": distribution_profile(np.ones(3))}
    reference = ReferenceProfile.from_profile(profile)
    with pytest.raises(ValueError, match=r"\(rows, 1\) matrix"):
        feature_drift(reference, np.zeros((4, 2)), ["a"])
    with pytest.raises(KeyError, match="'b'"):
        feature_drift(reference, np.zeros((4, 1)), ["b"])


def good_profile() -> dict[str, Any]:
    return {"edges": [1.0, 2.0], "shares": [0.3, 0.3, 0.3], "missing_share": 0.1, "sample": [0.5, 1.5], "count": 10}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shares": [0.45, 0.45]}, r"2 edges make 3 bins, but the profile has 2 shares"),
        ({"edges": [2.0, 1.0]}, r"strictly increasing"),
        ({"edges": [1.0, float("nan")]}, r"finite"),
        ({"shares": [0.3, 0.3, 0.2]}, r"add up to 1"),
        ({"shares": [0.5, -0.1, 0.5]}, r"\[0, 1\]"),
        ({"missing_share": "a lot"}, r"missing_share must be a number"),
        ({"sample": [1.5, 0.5]}, r"sorted"),
        ({"edges": "1, 2"}, r"edges must be"),
    ],
)
def test_an_invalid_profile_raises_a_clear_error(change: dict[str, Any], message: str) -> None:
    DistributionReference.from_profile(good_profile())  # the unchanged one is valid
    with pytest.raises(ProfileError, match=message):
        DistributionReference.from_profile(good_profile() | change)


def test_an_invalid_profile_names_its_key_and_feature() -> None:
    missing_key = {key: value for key, value in good_profile().items() if key != "shares"}
    with pytest.raises(ProfileError, match="no 'shares'"):
        BinnedReference.from_profile(missing_key)
    broken = good_profile() | {"shares": [1.0]}
    with pytest.raises(ProfileError, match="feature 'amount'"):
        ReferenceProfile.from_profile({"features": {"amount": broken}, "prediction": good_profile()})
    with pytest.raises(ProfileError, match="no 'prediction'"):
        ReferenceProfile.from_profile({"features": {"amount": good_profile()}})


# --- Quality ---------------------------------------------------------------------------------------


def brute_force_calibration(labels: np.ndarray, scores: np.ndarray, bins: int) -> float:
    members: dict[int, list[int]] = {}
    for row, score in enumerate(scores):
        members.setdefault(min(int(score * bins), bins - 1), []).append(row)
    total = 0.0
    for rows in members.values():
        rate = sum(labels[row] for row in rows) / len(rows)
        mean_score = sum(scores[row] for row in rows) / len(rows)
        total += len(rows) * abs(rate - mean_score)
    return total / len(scores)


def test_calibration_error_known_answers() -> None:
    # Scores 0.25 and 0.75 with exactly those fraud rates: perfectly calibrated.
    labels = np.r_[np.ones(25), np.zeros(75), np.ones(75), np.zeros(25)]
    scores = np.r_[np.full(100, 0.25), np.full(100, 0.75)]
    assert calibration_error(labels, scores) == pytest.approx(0.0, abs=1e-12)
    # Always 0.9, never fraud: off by 0.9.
    assert calibration_error(np.zeros(10), np.full(10, 0.9)) == pytest.approx(0.9)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 300), bins=st.sampled_from([5, 10]))
def test_calibration_error_equals_brute_force(seed: int, size: int, bins: int) -> None:
    rng = np.random.default_rng(seed)
    # Continuous scores: none falls on a bin edge, where float rounding of the edges decides.
    scores = rng.beta(0.7, 2.0, size)
    labels = (rng.random(size) < scores**1.5).astype(np.int8)
    assert calibration_error(labels, scores, bins) == pytest.approx(brute_force_calibration(labels, scores, bins))


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 200),
    fraud_rate=st.sampled_from([0.0, 0.05, 0.5]),
    threshold=st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.1]),
)
def test_quality_summary_equals_scikit_learn_and_brute_force(
    seed: int, size: int, fraud_rate: float, threshold: float
) -> None:
    rng = np.random.default_rng(seed)
    labels = (rng.random(size) < fraud_rate).astype(np.int8)
    # Few distinct scores, some equal to the threshold (flagged: score >= threshold).
    scores = rng.choice([0.0, 0.1, 0.3, 0.5, 0.9, 1.0], size) * np.where(labels == 1, 1.0, rng.random(size) < 0.7)
    amounts = np.round(rng.gamma(2.0, 40.0, size), 2)
    summary = quality_summary(labels, scores, amounts, threshold=threshold, costs=COSTS, min_labels=1, min_positives=1)

    flagged = scores >= threshold
    assert summary.precision == pytest.approx(precision_score(labels, flagged, zero_division=np.nan), nan_ok=True)
    assert summary.recall == pytest.approx(recall_score(labels, flagged, zero_division=np.nan), nan_ok=True)
    if labels.any():
        assert summary.pr_auc == pytest.approx(average_precision_score(labels, scores))
    else:
        assert math.isnan(summary.pr_auc)
    assert summary.calibration_error == pytest.approx(calibration_error(labels, scores, 10))

    caught = missed = false_positive_cost = cost = 0.0
    for label, score, amount in zip(labels.tolist(), scores.tolist(), amounts.tolist(), strict=True):
        if label == 1 and score >= threshold:
            caught += amount
            cost += COSTS.true_positive
        elif label == 1:
            missed += amount
            cost += COSTS.false_negative_fixed + COSTS.false_negative_amount_share * amount
        elif score >= threshold:
            false_positive_cost += COSTS.false_positive
            cost += COSTS.false_positive
    assert summary.positive_amount_caught == pytest.approx(caught)
    assert summary.positive_amount_missed == pytest.approx(missed)
    assert summary.false_positive_cost == pytest.approx(false_positive_cost)
    assert summary.expected_cost == pytest.approx(cost)
    assert (summary.labels, summary.positives) == (size, int(labels.sum()))
    assert summary.sufficient == bool(labels.any())


def test_quality_summary_reads_the_costs_it_is_given() -> None:
    costs = Costs(currency="EUR", false_positive=1.0, false_negative_fixed=0.0, false_negative_amount_share=0.5)
    summary = quality_summary(
        np.array([1, 0, 0, 1]),
        np.array([0.9, 0.8, 0.1, 0.2]),
        np.array([100.0, 50.0, 20.0, 40.0]),
        threshold=0.5,
        costs=costs,
        min_labels=1,
        min_positives=1,
    )
    # One false positive (1.0) and a missed fraud of 40 at half its amount (20.0).
    assert summary.false_positive_cost == 1.0
    assert summary.expected_cost == pytest.approx(21.0)
    assert (summary.positive_amount_caught, summary.positive_amount_missed) == (100.0, 40.0)
    assert (summary.precision, summary.recall) == (0.5, 0.5)


def test_sufficiency_edges() -> None:
    assert enough_labels(100, 5, min_labels=100, min_positives=5)
    assert not enough_labels(99, 5, min_labels=100, min_positives=5)
    assert not enough_labels(100, 4, min_labels=100, min_positives=5)
    assert not enough_labels(0, 0, min_labels=1, min_positives=1)
    with pytest.raises(ValueError, match=">= 1"):
        enough_labels(10, 1, min_labels=0, min_positives=1)
    with pytest.raises(ValueError, match=">= 1"):
        enough_labels(10, 1, min_labels=1, min_positives=0)
    labels = np.r_[np.ones(3), np.zeros(7)]
    window = (labels, np.linspace(0, 1, 10), np.ones(10))
    assert quality_summary(*window, threshold=0.5, costs=COSTS, min_labels=10, min_positives=3).sufficient
    assert not quality_summary(*window, threshold=0.5, costs=COSTS, min_labels=11, min_positives=3).sufficient
    assert not quality_summary(*window, threshold=0.5, costs=COSTS, min_labels=10, min_positives=4).sufficient


LENIENT: dict[str, Any] = {"threshold": 0.5, "costs": COSTS, "min_labels": 1, "min_positives": 1}


def test_quality_summary_rejects_labels_that_are_not_zero_or_one() -> None:
    with pytest.raises(ValueError, match="0 and 1"):
        quality_summary(np.array([0, 2]), np.array([0.1, 0.2]), np.ones(2), **LENIENT)
    with pytest.raises(ValueError, match="amounts must match"):
        quality_summary(np.array([0, 1]), np.array([0.1, 0.2]), np.ones(3), **LENIENT)
