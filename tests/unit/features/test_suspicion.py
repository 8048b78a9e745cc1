"""The review list: single-feature AUCs against a brute-force count, importance jumps by their rule."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berg.features.suspicion import (
    DEFAULT_MIN_RATIO,
    DEFAULT_MIN_RISE,
    importance_jumps,
    importance_shares,
    separable_features,
    single_feature_auc,
)

pytestmark = pytest.mark.unit


def brute_auc(values: list[float | None], labels: list[int]) -> float:
    """Direction-free AUC by comparing every (positive, negative) pair with a value; ties count half."""
    pairs = [
        (p, n)
        for (p, lp), (n, ln) in itertools.product(zip(values, labels, strict=True), repeat=2)
        if lp == 1 and ln == 0 and p is not None and n is not None and not (math.isnan(p) or math.isnan(n))
    ]
    auc = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    return max(auc, 1 - auc)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.integers(-3, 3).map(float)), st.integers(0, 1)),
        min_size=4,
        max_size=40,
    )
)
def test_single_feature_auc_is_the_pairwise_count_over_rows_with_a_value(rows: list[tuple[float | None, int]]) -> None:
    values = [value for value, _ in rows]
    labels = [label for _, label in rows]
    present = [label for value, label in rows if value is not None]
    series = pd.Series([np.nan if value is None else value for value in values], dtype="float64")
    got = single_feature_auc(series, np.array(labels), min_class_rows=1)
    if 0 in present and 1 in present:
        assert got == pytest.approx(brute_auc(values, labels))
        assert 0.5 <= got <= 1.0
    else:
        assert math.isnan(got)


def test_single_feature_auc_is_direction_free_and_skips_text_and_thin_classes() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    up = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert single_feature_auc(up, labels, min_class_rows=1) == 1.0
    assert single_feature_auc(-up, labels, min_class_rows=1) == 1.0
    assert math.isnan(single_feature_auc(pd.Series(list("abcdef")), labels, min_class_rows=1))
    assert math.isnan(single_feature_auc(up, labels, min_class_rows=4))
    booleans = pd.Series([False, False, True, True, True, True])
    assert single_feature_auc(booleans, labels, min_class_rows=1) == pytest.approx(
        brute_auc([0, 0, 1, 1, 1, 1], list(labels))
    )


def partial_leak_frame(rows: int = 2000, leak_share: float = 0.6, seed: int = 0) -> pd.DataFrame:
    """A weak feature, a feature equal to the label on ``leak_share`` of the rows (noise elsewhere), a clean one."""
    rng = np.random.default_rng(seed)
    label = (rng.random(rows) < 0.2).astype(int)
    leaked = np.where(rng.random(rows) < leak_share, label + rng.normal(0, 0.1, rows), rng.random(rows))
    frame = pd.DataFrame(
        {
            "label": label,
            "weak": rng.normal(0, 1, rows) + 0.5 * label,
            "partial": leaked,
            "noise": rng.normal(0, 1, rows),
        }
    )
    frame.loc[rng.random(rows) < 0.3, "weak"] = np.nan
    return frame


def test_separable_features_lists_the_partial_leak_with_its_auc_and_nothing_else() -> None:
    frame = partial_leak_frame()
    auc = single_feature_auc(frame["partial"], frame["label"].to_numpy())
    assert 0.90 <= auc < 0.99, "the plant is a partial leak, below the failing threshold"
    assert single_feature_auc(frame["weak"], frame["label"].to_numpy()) < 0.9

    found = separable_features(frame, "label", ["weak", "partial", "noise"])
    assert [(s.feature, s.kind) for s in found] == [("partial", "separable")]
    assert found[0].value == pytest.approx(auc)
    assert f"{auc:.4f}" in found[0].reason
    # A stricter threshold than its AUC lists nothing; a looser one lists the weak feature too, strongest first.
    assert separable_features(frame, "label", ["partial"], threshold=auc + 1e-9) == []
    loose = separable_features(frame, "label", ["weak", "partial", "noise"], threshold=0.6)
    assert [s.feature for s in loose] == ["partial", "weak"]


def test_separable_features_ignores_unlabelled_rows_and_a_one_class_label() -> None:
    frame = partial_leak_frame()
    with_unlabelled = pd.concat(
        [frame, pd.DataFrame({"label": [np.nan] * 500, "partial": [5.0] * 500, "weak": 0.0, "noise": 0.0})],
        ignore_index=True,
    )
    assert separable_features(with_unlabelled, "label", ["partial"]) == separable_features(frame, "label", ["partial"])
    assert separable_features(frame.assign(label=1), "label", ["partial"]) == []


def test_importance_shares_sum_to_one() -> None:
    assert importance_shares({"a": 3.0, "b": 1.0}) == {"a": 0.75, "b": 0.25}
    assert importance_shares({}) == {}
    assert importance_shares({"a": 0.0}) == {}


def test_a_jump_needs_both_the_absolute_rise_and_the_ratio() -> None:
    champion = {"big": 50.0, "mid": 30.0, "small": 10.0, "tiny": 10.0}  # shares .5 .3 .1 .1
    # big: .5 -> .3 (a fall); mid: .3 -> .42 (rise .12 but x1.4); small: .1 -> .21 (x2.1 but rise .11): listed;
    # tiny: .1 -> .07.
    challenger = {"big": 30.0, "mid": 42.0, "small": 21.0, "tiny": 7.0}
    found = importance_jumps(challenger, champion, min_rise=0.10, min_ratio=2.0)
    assert [(s.feature, s.kind) for s in found] == [("small", "importance_jump")]
    assert found[0].value == pytest.approx(0.21)
    assert "10.0%" in found[0].reason
    assert "21.0%" in found[0].reason
    assert importance_jumps(challenger, champion, min_rise=0.12, min_ratio=2.0) == []
    assert importance_jumps(challenger, champion, min_rise=0.10, min_ratio=2.2) == []


def test_a_feature_the_champion_did_not_use_counts_from_zero() -> None:
    champion = {"a": 1.0, "b": 1.0}
    found = importance_jumps({"a": 1.0, "b": 1.0, "new": 1.0}, champion)
    assert [s.feature for s in found] == ["new"]
    assert found[0].value == pytest.approx(1 / 3)
    assert "not used by the champion" in found[0].reason
    # A new feature with a small share is not a jump.
    assert importance_jumps({"a": 10.0, "b": 10.0, "new": 1.0}, champion) == []
    assert importance_jumps({"a": 1.0}, {}) == []


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abcdef"), st.floats(0.01, 100.0), min_size=1),
    st.dictionaries(st.sampled_from("abcdef"), st.floats(0.01, 100.0), min_size=1),
)
def test_importance_jumps_are_exactly_the_features_the_rule_picks(
    challenger: dict[str, float], champion: dict[str, float]
) -> None:
    new_total, old_total = sum(challenger.values()), sum(champion.values())
    expected = []
    for feature, gain in challenger.items():
        share, before = gain / new_total, champion.get(feature, 0.0) / old_total
        if share - before >= DEFAULT_MIN_RISE and share >= DEFAULT_MIN_RATIO * before:
            expected.append((share - before, feature))
    found = importance_jumps(challenger, champion)
    assert [s.feature for s in found] == [feature for _, feature in sorted(expected, key=lambda e: (-e[0], e[1]))]
    # Scaling either map (by powers of two: exact in floating point) changes nothing: only shares count.
    scaled = importance_jumps({k: 8 * v for k, v in challenger.items()}, {k: v / 4 for k, v in champion.items()})
    assert [s.feature for s in scaled] == [s.feature for s in found]
