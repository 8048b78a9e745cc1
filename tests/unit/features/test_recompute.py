"""The recompute check's reference semantics against hand-computed values: window edges, TTL, each function."""

from __future__ import annotations

import dataclasses
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from berg.features.aggregation import AggregationView, WindowedAggregate
from berg.features.feature_set import (
    ARRIVAL_TIME,
    DeclaredWindow,
    Entity,
    FeatureSpec,
    OnDemandView,
    SnapshotAggregate,
    SnapshotView,
    StreamingView,
    TrustedView,
    ViewColumns,
)
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
    snapshot_row,
    streaming_row,
)
from berg.features.recompute_check import UnprovenViewError, check_recompute
from berg_fraud.use_case import fraud
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


SNAPSHOT = SnapshotView(
    name="shop_snapshots",
    entity=Entity("shop", "shop_id", "A shop."),
    every=timedelta(hours=1),
    ttl=timedelta(hours=5),
    aggregates=(
        SnapshotAggregate("orders_2h", "count", timedelta(hours=2)),
        SnapshotAggregate("total_mean_1h", "mean", timedelta(hours=1), field="total"),
        SnapshotAggregate("returned_share_2h", "positive_share", timedelta(hours=2)),
        SnapshotAggregate("verdicts_2h", "labels_known", timedelta(hours=2)),
    ),
    as_of="shop_snapshot_unix",
    available="shop_available_unix",
    description="Per shop, hourly.",
)
NEVER = np.iinfo(np.int64).max


def test_a_snapshot_reads_events_by_event_time_and_labels_by_arrival_up_to_its_time() -> None:
    s = T - HOUR
    times = np.array([s - 2 * HOUR, s - 2 * HOUR + 1, s - HOUR + 1, s, s + 1], dtype=np.int64)
    values = {"total": np.array([100.0, 1.0, 2.0, 4.0, 1000.0])}
    # Labels: the second event's arrived at s (known), the third's arrived one microsecond after s (not),
    # the fourth's was positive and arrived before s; the last event is after s and never read.
    arrival = np.array([NEVER, s, s + 1, s - 5, s + 2], dtype=np.int64)
    positive = np.array([False, True, True, True, True])
    row = snapshot_row(SNAPSHOT, s, times, values, arrival, positive)
    assert row == {
        "orders_2h": 3.0,  # (s - 2h, s]: the first event is exactly 2h old, outside
        "total_mean_1h": 3.0,  # (s - 1h, s]: 2.0 and 4.0
        "returned_share_2h": 2 / 3,  # known and positive by s: the second and the fourth
        "verdicts_2h": 2.0,
    }
    assert snapshot_row(SNAPSHOT, s - 3 * HOUR, times, values, arrival, positive) is None, "no event in its window"
    # An hour after its last event, a key still has a row: its 1-hour mean is missing, not zero.
    quiet = snapshot_row(
        SNAPSHOT, s + 2 * HOUR - 1, times[:4], {"total": values["total"][:4]}, arrival[:4], positive[:4]
    )
    assert quiet is not None
    assert quiet["orders_2h"] == 1
    assert math.isnan(quiet["total_mean_1h"])


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
    mode="pandas",
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
    hour = pd.Timedelta(hours=1)
    labels.append(
        "labels",
        [
            # e1 was fraud, and the label was issued before the snapshot at T0 - 1h; it arrived only after it.
            label("l1", "e1", T0 - 1.8 * hour, arrived=T0 - 0.5 * hour, fraud=True),
            # A second verdict on e2, arrived before the snapshot (e2 is at another merchant: not in m1's window).
            label("l2", "e2", T0 - 0.6 * hour, arrived=T0 - 0.6 * hour, fraud=False),
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
            # The snapshot at T0 - 1h of m1: (T0 - 25h, T0 - 1h] holds e1 only, whose label had not arrived.
            "merchant_id": ["m1", "m1"],
            "merchant_tx_count_24h": pd.array([1, 1], dtype="Int64"),
            "merchant_amount_mean_24h": [10.0, 10.0],
            "merchant_fraud_rate_30d": [0.0, 0.0],
            "merchant_labels_known_30d": pd.array([0, 0], dtype="Int64"),
            "merchant_snapshot_unix": [(T0 - hour).timestamp()] * 2,
        }
    )
    views = dict.fromkeys(FEATURES.streaming[0].model_features, "user_transaction_aggregates")
    views |= dict.fromkeys(FEATURES.on_demand_features, "transaction_context")
    views |= dict.fromkeys(FEATURES.snapshots[0].model_features, "merchant_aggregates")
    return labels, frame, views


def label(event_id: str, subject: str, at: pd.Timestamp, *, arrived: pd.Timestamp, fraud: bool) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_time": at.to_pydatetime(),
        "transaction_event_id": subject,
        "user_id": "u1",
        "is_fraud": fraud,
        "source": "chargeback",
        ARRIVAL_TIME: arrived.to_pydatetime(),
    }


JOIN = fraud().label_join


def test_the_check_reads_the_label_store_and_reproduces_hand_computed_rows(tmp_path: Path) -> None:
    labels, frame, views = hand_made_world(tmp_path)
    result = check_recompute(frame, labels, FEATURES, views, JOIN, sample_size=90)
    assert result.ok, result.summary()
    assert result.rows_sampled == 2
    assert result.compared == {
        "user_transaction_aggregates": 2 * 12,
        "merchant_aggregates": 2 * 4,
        "transaction_context": 2 * 3,
    }
    assert result.trusted == {}


def test_a_snapshot_counting_a_label_before_it_arrived_fails_naming_the_feature(tmp_path: Path) -> None:
    labels, frame, views = hand_made_world(tmp_path)
    # As a producer reading labels by their own event time would: l1 was issued before the snapshot.
    frame["merchant_fraud_rate_30d"] = 1.0
    frame["merchant_labels_known_30d"] = pd.array([1, 1], dtype="Int64")
    with pytest.raises(RecomputeError) as caught:
        check_recompute(frame, labels, FEATURES, views, JOIN)
    message = str(caught.value)
    assert "view 'merchant_aggregates', feature 'merchant_fraud_rate_30d'" in message, message
    assert "training frame 1.0, recomputed 0.0" in message, message
    assert {finding.subject for finding in caught.value.report.findings} == {
        "merchant_fraud_rate_30d",
        "merchant_labels_known_30d",
    }


def test_a_snapshot_time_at_or_after_the_prediction_or_off_the_period_is_named(tmp_path: Path) -> None:
    labels, frame, views = hand_made_world(tmp_path)
    frame.loc[0, "merchant_snapshot_unix"] = T0.timestamp()  # the snapshot at the prediction time itself
    frame.loc[1, "merchant_snapshot_unix"] = (T0 - pd.Timedelta(minutes=90)).timestamp()
    with pytest.raises(RecomputeError) as caught:
        check_recompute(frame, labels, FEATURES, views, JOIN)
    message = str(caught.value)
    assert "not before the prediction time" in message, message
    assert "not on the view's period" in message, message


def test_a_row_without_a_snapshot_must_miss_every_snapshot_value(tmp_path: Path) -> None:
    labels, frame, views = hand_made_world(tmp_path)
    frame.loc[1, "merchant_snapshot_unix"] = math.nan
    with pytest.raises(RecomputeError, match="merchant_tx_count_24h"):
        check_recompute(frame, labels, FEATURES, views, JOIN)
    for column in FEATURES.snapshots[0].model_features:
        frame.loc[1, column] = None
    assert check_recompute(frame, labels, FEATURES, views, JOIN).ok


def test_a_view_without_a_producer_is_refused_unless_trusted_and_then_listed_with_its_reason(tmp_path: Path) -> None:
    labels, frame, views = hand_made_world(tmp_path)
    frame["planted"] = 1.0
    with pytest.raises(UnprovenViewError) as caught:
        check_recompute(frame, labels, FEATURES, {**views, "planted": "planted_view"}, JOIN)
    assert "'planted_view'" in str(caught.value)
    assert "trusted" in str(caught.value)
    trusting = dataclasses.replace(
        FEATURES,
        trusted=(
            TrustedView(
                "planted_view",
                "filled by the warehouse's own audited job",
                (DeclaredWindow("scored", "event_time", timedelta(days=1)),),
            ),
        ),
    )
    result = check_recompute(frame, labels, trusting, {**views, "planted": "planted_view"}, JOIN)
    assert result.ok
    assert result.trusted == {"planted_view": "filled by the warehouse's own audited job"}
    assert result.as_dict()["trusted"] == result.trusted


def test_the_check_names_the_view_feature_row_and_values_of_a_planted_difference(tmp_path: Path) -> None:
    labels, frame, views = hand_made_world(tmp_path)
    frame.loc[0, "tx_count_24h"] = 3  # as if e3, at the prediction time, were counted
    frame.loc[1, "hour_of_day"] = 23
    with pytest.raises(RecomputeError) as caught:
        check_recompute(frame, labels, FEATURES, views, JOIN)
    message = str(caught.value)
    assert "view 'user_transaction_aggregates', feature 'tx_count_24h'" in message, message
    assert "user_id='u1'): training frame 3.0, recomputed 2.0" in message, message
    assert "view 'transaction_context', feature 'hour_of_day'" in message, message
    assert "event_id='e5'): training frame 23.0, recomputed 22.0" in message, message
    assert {finding.subject for finding in caught.value.report.findings} == {"tx_count_24h", "hour_of_day"}
