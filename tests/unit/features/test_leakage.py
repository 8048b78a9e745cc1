"""The leakage check on hand-made frames: planted label leaks and future data are caught, clean frames pass."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berg.features.leakage import LeakageError, check_leakage, roc_auc

pytestmark = pytest.mark.unit

ROWS = 400
T0 = pd.Timestamp("2026-03-01", tz="UTC")
VIEWS = {"amount_mean_7d": "user_view", "tx_count_24h": "user_view", "merchant_fraud_rate": "merchant_view"}
AS_OF = {"user_view": "user_as_of", "merchant_view": "merchant_as_of"}


def clean_frame(seed: int = 0) -> pd.DataFrame:
    """Plausible features, weakly related to a ~10% label, as-of times before each prediction time."""
    rng = np.random.default_rng(seed)
    label = (rng.random(ROWS) < 0.1).astype(int)
    prediction = T0 + pd.to_timedelta(rng.integers(0, 30 * 86400, ROWS), unit="s")
    unix = prediction.astype("int64") / 1e9
    frame = pd.DataFrame(
        {
            "is_fraud": label,
            "event_timestamp": prediction,
            "amount_mean_7d": rng.gamma(2.0, 30.0, ROWS) + 20 * label,
            "tx_count_24h": pd.array(rng.poisson(3, ROWS), dtype="Int64"),
            "merchant_fraud_rate": rng.beta(1, 30, ROWS),
            "user_as_of": unix - rng.uniform(1, 86400, ROWS),
            "merchant_as_of": unix - rng.uniform(0, 3600, ROWS),
        }
    )
    frame.loc[rng.random(ROWS) < 0.2, ["amount_mean_7d", "user_as_of"]] = np.nan  # users without history
    return frame


def check(frame: pd.DataFrame, views: dict[str, str] | None = None, **options: Any) -> None:
    check_leakage(
        frame,
        label_column="is_fraud",
        prediction_time_column="event_timestamp",
        feature_columns=views or VIEWS,
        as_of_columns=AS_OF,
        **options,
    )


def test_a_clean_frame_passes() -> None:
    report = check_leakage(
        clean_frame(),
        label_column="is_fraud",
        prediction_time_column="event_timestamp",
        feature_columns=VIEWS,
        as_of_columns=AS_OF,
    )
    assert report.ok
    assert report.rows == ROWS
    assert set(report.views_checked) == {"user_view", "merchant_view"}
    assert "no leak found" in report.summary()


def test_the_label_itself_is_caught_as_a_function_of_the_label() -> None:
    frame = clean_frame()
    frame["planted"] = frame["is_fraud"]
    with pytest.raises(LeakageError) as caught:
        check(frame, {**VIEWS, "planted": "user_view"})
    (finding,) = caught.value.report.findings
    assert (finding.kind, finding.subject) == ("label_function", "planted")
    assert "feature 'planted' (view 'user_view') is a function of the label" in str(caught.value)
    assert f"({ROWS} rows)" in str(caught.value)


def test_a_noisy_multiple_of_the_label_is_caught_by_separability() -> None:
    frame = clean_frame()
    frame["planted"] = frame["is_fraud"] * 2 + np.random.default_rng(1).normal(0, 0.2, ROWS)
    with pytest.raises(LeakageError, match=r"feature 'planted' \(view 'user_view'\) alone separates the label"):
        check(frame, {**VIEWS, "planted": "user_view"})


def test_a_negated_label_is_caught_too() -> None:
    frame = clean_frame()
    frame["planted"] = -3.0 * frame["is_fraud"] + np.random.default_rng(2).uniform(0, 1, ROWS)
    with pytest.raises(LeakageError) as caught:
        check(frame, {**VIEWS, "planted": "user_view"})
    assert caught.value.report.findings[0].score <= 0.01


def test_a_value_set_on_one_class_only_is_caught() -> None:
    """Non-monotone: fraud rows get exactly 0.5, others a uniform value; separability alone misses it."""
    frame = clean_frame()
    rng = np.random.default_rng(3)
    frame["planted"] = np.where(frame["is_fraud"] == 1, 0.5, rng.uniform(0, 1, ROWS))
    with pytest.raises(LeakageError) as caught:
        check(frame, {**VIEWS, "planted": "user_view"})
    (finding,) = caught.value.report.findings
    assert finding.kind == "label_indicator"
    assert "is 0.5 on 100.0% of positive rows and 0.0% of negative rows" in finding.message


def test_nulls_set_by_the_label_are_caught() -> None:
    frame = clean_frame()
    frame["planted"] = np.where(frame["is_fraud"] == 1, np.nan, 1.0 + np.arange(ROWS))
    with pytest.raises(LeakageError, match=r"'planted' .* is null on 100\.0% of positive rows"):
        check(frame, {**VIEWS, "planted": "user_view"})


def test_a_text_feature_derived_from_the_label_is_caught() -> None:
    frame = clean_frame()
    frame["planted"] = frame["is_fraud"].map({0: "ok", 1: "chargeback"})
    with pytest.raises(LeakageError, match="is a function of the label: 'chargeback' on every positive row"):
        check(frame, {**VIEWS, "planted": "user_view"})


def test_a_constant_feature_is_not_a_leak() -> None:
    frame = clean_frame()
    frame["constant"] = 1.0
    check(frame, {**VIEWS, "constant": "user_view"})


def test_too_few_positives_skip_separability_rather_than_guess() -> None:
    frame = clean_frame().iloc[:60].copy()
    frame["is_fraud"] = 0
    frame.loc[frame.index[:3], "is_fraud"] = 1
    frame["planted"] = frame["is_fraud"] * 2.0
    check(frame, {**VIEWS, "planted": "user_view"})  # 3 positives < min_class_rows
    with pytest.raises(LeakageError, match="planted"):
        check(frame, {**VIEWS, "planted": "user_view"}, min_class_rows=3)


def test_a_one_class_label_skips_the_label_checks_with_a_note() -> None:
    frame = clean_frame()
    frame["is_fraud"] = 0
    report = check_leakage(
        frame,
        label_column="is_fraud",
        prediction_time_column="event_timestamp",
        feature_columns=VIEWS,
        as_of_columns=AS_OF,
    )
    assert report.ok
    assert report.notes == ("label checks skipped: label has 1 class(es), not 2",)


def test_rows_without_a_label_are_left_out_of_the_label_checks() -> None:
    frame = clean_frame()
    frame["is_fraud"] = frame["is_fraud"].astype("float64")
    frame["planted"] = frame["is_fraud"]
    frame.loc[frame.index[::7], "is_fraud"] = np.nan
    with pytest.raises(LeakageError, match=f"function of the label.*\\({ROWS - len(frame.index[::7])} rows\\)"):
        check(frame, {**VIEWS, "planted": "user_view"})


def test_as_of_times_after_the_prediction_time_are_caught() -> None:
    frame = clean_frame()
    future = frame.index[frame["merchant_as_of"].notna()][:17]
    frame.loc[future, "merchant_as_of"] = frame.loc[future, "event_timestamp"].astype("int64") / 1e9 + 7200
    with pytest.raises(LeakageError) as caught:
        check(frame)
    (finding,) = caught.value.report.findings
    assert (finding.kind, finding.subject, finding.rows) == ("future_as_of", "merchant_view", 17)
    assert finding.score == pytest.approx(7200)
    message = str(caught.value)
    assert f"view 'merchant_view': 17 of {ROWS} rows use data from after the prediction time" in message
    assert "as-of column 'merchant_as_of' up to 2 h ahead" in message
    assert "features affected: 'merchant_fraud_rate'" in message


def test_as_of_times_may_be_datetimes_and_predictions_unix_seconds() -> None:
    frame = clean_frame()
    frame["event_timestamp"] = frame["event_timestamp"].astype("int64") / 1e9
    frame["user_as_of"] = pd.to_datetime(frame["event_timestamp"] + 1, unit="s", utc=True)
    with pytest.raises(LeakageError, match=f"'user_view': {ROWS} of {ROWS} rows"):
        check(frame)


def test_an_as_of_equal_to_the_prediction_time_passes_unless_it_must_precede() -> None:
    frame = clean_frame()
    frame["user_as_of"] = frame["event_timestamp"].astype("int64") / 1e9
    check(frame)
    with pytest.raises(LeakageError, match="rows use data from at or after the prediction time"):
        check(frame, as_of_must_precede=True)


def test_a_view_without_an_as_of_column_is_reported_unless_allowed() -> None:
    frame = clean_frame()
    frame["device_score"] = np.random.default_rng(4).random(ROWS)
    views = {**VIEWS, "device_score": "device_view"}
    with pytest.raises(LeakageError) as caught:
        check(frame, views)
    (finding,) = caught.value.report.findings
    assert (finding.kind, finding.subject) == ("unproven_view", "device_view")
    assert "view 'device_view' has no as-of column" in finding.message
    assert "allow_unproven_views=['device_view']" in finding.message
    check(frame, views, allow_unproven_views=["device_view"])


def test_an_as_of_column_missing_from_the_frame_is_reported() -> None:
    frame = clean_frame().drop(columns=["user_as_of"])
    with pytest.raises(LeakageError, match=r"its as-of column 'user_as_of' is not in the frame.*with_as_of=True"):
        check(frame)


def test_the_report_can_be_returned_instead_of_raised() -> None:
    frame = clean_frame()
    frame["planted"] = frame["is_fraud"]
    frame["user_as_of"] = frame["event_timestamp"].astype("int64") / 1e9 + 60
    report = check_leakage(
        frame,
        label_column="is_fraud",
        prediction_time_column="event_timestamp",
        feature_columns={**VIEWS, "planted": "user_view"},
        as_of_columns=AS_OF,
        raise_on_findings=False,
    )
    assert [finding.kind for finding in report.findings] == ["label_function", "future_as_of"]
    assert not report.ok
    assert "2 finding(s)" in report.summary()


def test_missing_columns_are_a_key_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        check(clean_frame(), {"nope": "user_view"})


@given(
    scores=st.lists(st.integers(-3, 3), min_size=2, max_size=30),
    labels=st.lists(st.booleans(), min_size=2, max_size=30),
)
@settings(max_examples=200, deadline=None)
def test_roc_auc_equals_the_pairwise_definition(scores: list[int], labels: list[bool]) -> None:
    size = min(len(scores), len(labels))
    x, y = np.array(scores[:size], dtype=float), np.array(labels[:size])
    pairs = [
        1.0 if a > b else 0.5 if a == b else 0.0
        for (a, la), (b, lb) in itertools.product(zip(x, y, strict=True), repeat=2)
        if la and not lb
    ]
    expected = sum(pairs) / len(pairs) if pairs else float("nan")
    assert roc_auc(x, y) == pytest.approx(expected, nan_ok=True)
