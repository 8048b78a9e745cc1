"""The recompute check's reference semantics against hand-computed values: window edges, TTL, each function."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from berg.features.aggregation import AggregationView, WindowedAggregate
from berg.features.feature_set import Entity, FeatureSpec, OnDemandView, StreamingView, ViewColumns
from berg.features.label_store import LabelStore
from berg.features.leakage import LeakageError
from berg.features.recompute import (
    DEFAULT_SAMPLE_SIZE,
    Mismatch,
    RecomputeError,
    RecomputeResult,
    compare_values,
    on_demand_row,
    sample_rows,
    sample_size,
    streaming_row,
)
from berg.features.recompute_check import check_recompute
from tests.fraud_schema import FEATURES, fraud_label_store

pytestmark = pytest.mark.unit

SECOND = 1_000_000
HOUR = 3600 * SECOND
T = 1_000_000 * HOUR
"""A prediction time, in microseconds."""

VIEW = StreamingView(
    AggregationView(
        "shop_view",
        "shop_id",
        "shop_as_of_unix",
        (
            WindowedAggregate("orders_1h", "count", timedelta(hours=1)),
            WindowedAggregate("total_sum_1h", "sum", timedelta(hours=1), field="total"),
            WindowedAggregate("total_mean_2h", "mean", timedelta(hours=2), field="total"),
            WindowedAggregate("total_max_2h", "max", timedelta(hours=2), field="total"),
            WindowedAggregate("buyers_2h", "distinct", timedelta(hours=2), field="buyer"),
            WindowedAggregate("mobile_share_2h", "share", timedelta(hours=2), field="device", value="mobile"),
        ),
    ),
    Entity("shop", "shop_id", "A shop."),
    ttl=timedelta(hours=3),
    description="Per shop.",
)


def events(*rows: tuple[int, float, str, str]) -> tuple[np.ndarray, pd.DataFrame]:
    """(event time in us, total, buyer, device) per event -> the arrays :func:`streaming_row` reads."""
    times = np.array([row[0] for row in rows], dtype=np.int64)
    values = pd.DataFrame(
        {"total": [row[1] for row in rows], "buyer": [row[2] for row in rows], "device": [row[3] for row in rows]}
    )
    return times, values


def test_the_default_sample_catches_a_five_percent_leak_with_99_percent_probability() -> None:
    assert DEFAULT_SAMPLE_SIZE == sample_size(0.05, 0.99) == 90
    assert 0.95**90 <= 0.01 < 0.95**89
    assert sample_size(0.5, 0.75) == 2


def test_the_window_is_open_at_its_start_and_closed_at_the_newest_event_before_the_prediction() -> None:
    last = T - 10 * SECOND
    times, values = events(
        (last - HOUR, 100.0, "a", "mobile"),  # exactly one hour before t_last: outside the 1h window
        (last - HOUR + 1, 7.0, "b", "web"),  # one microsecond later: inside
        (last, 3.0, "a", "mobile"),  # t_last itself: inside
        (T, 1000.0, "c", "mobile"),  # at the prediction time: never read
        (T + HOUR, 1000.0, "c", "mobile"),  # after it: never read
    )
    row = streaming_row(VIEW, times, values, T)
    assert row["orders_1h"] == 2
    assert row["total_sum_1h"] == 10.0
    assert row["total_mean_2h"] == pytest.approx(110.0 / 3)
    assert row["total_max_2h"] == 100.0
    assert row["buyers_2h"] == 2
    assert row["mobile_share_2h"] == pytest.approx(2 / 3)
    assert row["shop_as_of_unix"] == last / SECOND


def test_an_event_at_the_prediction_time_is_not_the_newest_row_the_prediction_sees() -> None:
    times, values = events((T - 5 * SECOND, 1.0, "a", "web"), (T, 50.0, "b", "mobile"))
    row = streaming_row(VIEW, times, values, T)
    assert (row["orders_1h"], row["total_max_2h"], row["shop_as_of_unix"]) == (1, 1.0, (T - 5 * SECOND) / SECOND)


def test_no_event_before_the_prediction_time_or_an_expired_ttl_gives_missing_values() -> None:
    ttl = 3 * HOUR
    # Feast's TTL bound is inclusive, at the join time one microsecond before T.
    times, values = events((T - 1 - ttl - 1, 5.0, "a", "web"))
    assert all(math.isnan(value) for value in streaming_row(VIEW, times, values, T).values())
    times, values = events((T - 1 - ttl, 5.0, "a", "web"))
    assert streaming_row(VIEW, times, values, T)["orders_1h"] == 1
    times, values = events((T, 5.0, "a", "web"))
    assert all(math.isnan(value) for value in streaming_row(VIEW, times, values, T).values())


def context(inputs: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    out = pd.DataFrame(index=inputs.index)
    out["total_to_mean"] = inputs["total"] / inputs["total_mean_2h"]
    out["seconds_since_last"] = inputs["event_unix"] - inputs["shop_as_of_unix"]
    return out


ON_DEMAND = OnDemandView(
    function=context,
    request_source="order_request",
    request_fields=("total",),
    inputs=(ViewColumns("shop_view", ("total_mean_2h", "shop_as_of_unix")),),
    features=(FeatureSpec("total_to_mean", "float", ""), FeatureSpec("seconds_since_last", "float", "")),
)


def test_the_on_demand_function_runs_on_the_request_and_the_recomputed_inputs() -> None:
    row = on_demand_row(
        ON_DEMAND, {"total": 30.0, "event_unix": 1000.0}, {"total_mean_2h": 20.0, "shop_as_of_unix": 990.0}
    )
    assert row == {"total_to_mean": 1.5, "seconds_since_last": 10.0}
    missing = on_demand_row(
        ON_DEMAND, {"total": 30.0, "event_unix": 1000.0}, {"total_mean_2h": math.nan, "shop_as_of_unix": math.nan}
    )
    assert all(math.isnan(value) for value in missing.values())
    with pytest.raises(KeyError):
        on_demand_row(ON_DEMAND, {"event_unix": 1000.0}, {"total_mean_2h": 20.0, "shop_as_of_unix": 990.0})


def test_values_agree_when_both_missing_or_close_and_not_otherwise() -> None:
    assert compare_values(math.nan, pd.NA)
    assert compare_values(3, 3.0)
    assert compare_values(1.0, 1.0 + 1e-15)
    assert not compare_values(1.0, 1.0 + 1e-9)
    assert not compare_values(math.nan, 0.0)
    assert not compare_values(0.0, None)
    assert not compare_values(1_767_225_600.0, 1_767_225_601.0), "as-of times one second apart differ"


def test_the_sample_is_seeded_distinct_and_whole_when_the_frame_is_small() -> None:
    first, again = sample_rows(1000, 90, seed=7), sample_rows(1000, 90, seed=7)
    assert np.array_equal(first, again)
    assert len(set(first.tolist())) == 90
    assert not np.array_equal(first, sample_rows(1000, 90, seed=8))
    assert np.array_equal(sample_rows(40, 90), np.arange(40))


def test_a_mismatch_raises_a_leakage_error_naming_view_feature_row_and_both_values() -> None:
    mismatch = Mismatch("shop_view", "orders_1h", "2026-03-01T00:00:00+00:00", "shop_id='s1'", 4.0, 3.0)
    result = RecomputeResult(rows=500, rows_sampled=90, seed=0, compared={"shop_view": 630}, mismatches=(mismatch,))
    error = RecomputeError(result)
    assert isinstance(error, LeakageError)
    message = str(error)
    for part in ("'shop_view'", "'orders_1h'", "2026-03-01T00:00:00+00:00", "shop_id='s1'", "4.0", "3.0"):
        assert part in message, message
    assert [finding.subject for finding in error.report.findings] == ["orders_1h"]


T0 = pd.Timestamp("2026-03-01 22:00", tz="UTC")


def transaction(
    event_id: str, at: pd.Timestamp, user: str, merchant: str, amount: float, channel: str
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_time": at.to_pydatetime(),
        "user_id": user,
        "merchant_id": merchant,
        "amount": amount,
        "currency": "EUR",
        "merchant_category": "5411",
        "channel": channel,
        "country": "DE",
        "source_partition": 0,
        "source_offset": 0,
    }


def hand_made_world(tmp_path: Path) -> tuple[LabelStore, pd.DataFrame, dict[str, str]]:
    """A label store with two users' transactions and a training frame of two rows at ``T0``, values by hand."""
    labels = fraud_label_store(str(tmp_path))
    labels.append(
        "transactions",
        [
            transaction("e1", T0 - pd.Timedelta(hours=2), "u1", "m1", 10.0, "card_present"),
            transaction("e2", T0 - pd.Timedelta(minutes=30), "u1", "m2", 30.0, "card_not_present"),
            transaction("e3", T0, "u1", "m1", 5.0, "card_present"),
            transaction("e4", T0 + pd.Timedelta(minutes=10), "u1", "m3", 1000.0, "card_present"),
            transaction("e5", T0, "u2", "m1", 7.0, "card_present"),
        ],
    )
    nan = math.nan
    last = (T0 - pd.Timedelta(minutes=30)).timestamp()
    frame = pd.DataFrame(
        {
            "event_id": ["e3", "e5"],
            "event_timestamp": [T0, T0],
            "user_id": ["u1", "u2"],
            "amount": [5.0, 7.0],
            "event_unix": [T0.timestamp()] * 2,
            # u1's newest row before T0 is e2's: (T0 - 90 min, T0 - 30 min] holds e2 only, a day holds e1 and e2.
            "tx_count_1h": pd.array([1, None], dtype="Int64"),
            "tx_count_24h": pd.array([2, None], dtype="Int64"),
            "tx_count_7d": pd.array([2, None], dtype="Int64"),
            "amount_sum_24h": [40.0, nan],
            "amount_mean_24h": [20.0, nan],
            "amount_max_24h": [30.0, nan],
            "amount_sum_7d": [40.0, nan],
            "amount_mean_7d": [20.0, nan],
            "amount_max_7d": [30.0, nan],
            "distinct_merchants_24h": pd.array([2, None], dtype="Int64"),
            "card_not_present_share_7d": [0.5, nan],
            "last_transaction_unix": [last, nan],
            "amount_to_user_mean_7d": [0.25, nan],
            "hour_of_day": pd.array([22, 22], dtype="Int64"),
            "seconds_since_previous_transaction": [1800.0, nan],
            "merchant_tx_count_24h": pd.array([3, 3], dtype="Int64"),
        }
    )
    views = dict.fromkeys(FEATURES.streaming[0].model_features, "user_transaction_aggregates")
    views |= dict.fromkeys(FEATURES.on_demand_features, "transaction_context")
    views["merchant_tx_count_24h"] = "merchant_aggregates"
    return labels, frame, views


def test_the_check_reads_the_label_store_and_reproduces_hand_computed_rows(tmp_path: Path) -> None:
    labels, frame, views = hand_made_world(tmp_path)
    result = check_recompute(frame, labels, FEATURES, {**views, "planted": "planted_view"}, sample_size=90)
    assert result.ok, result.summary()
    assert result.rows_sampled == 2
    assert result.compared == {"user_transaction_aggregates": 2 * 12, "transaction_context": 2 * 3}
    assert set(result.not_recomputed) == {"merchant_aggregates", "planted_view"}


def test_the_check_names_the_view_feature_row_and_values_of_a_planted_difference(tmp_path: Path) -> None:
    labels, frame, views = hand_made_world(tmp_path)
    frame.loc[0, "tx_count_24h"] = 3  # as if e3, at the prediction time, were counted
    frame.loc[1, "hour_of_day"] = 23
    with pytest.raises(RecomputeError) as caught:
        check_recompute(frame, labels, FEATURES, views)
    message = str(caught.value)
    assert "view 'user_transaction_aggregates', feature 'tx_count_24h'" in message, message
    assert "user_id='u1'): training frame 3.0, recomputed 2.0" in message, message
    assert "view 'transaction_context', feature 'hour_of_day'" in message, message
    assert "event_id='e5'): training frame 23.0, recomputed 22.0" in message, message
    assert {finding.subject for finding in caught.value.report.findings} == {"tx_count_24h", "hour_of_day"}
