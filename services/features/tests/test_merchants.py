"""Merchant snapshots equal a brute-force recomputation: only the window's transactions, only labels known then."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berg_features.merchant_job import snapshot_times
from berg_features.merchants import merchant_snapshots

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@st.composite
def history(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    count = draw(st.integers(1, 40))
    tx = pd.DataFrame(
        {
            "event_id": [f"t{i}" for i in range(count)],
            "event_time": [T0 + timedelta(hours=draw(st.integers(0, 24 * 40))) for _ in range(count)],
            "merchant_id": [draw(st.sampled_from(["m1", "m2", "m3"])) for _ in range(count)],
            "amount": [draw(st.floats(0.5, 900)) for _ in range(count)],
        }
    )
    labelled = draw(st.lists(st.integers(0, count - 1), max_size=count))
    labels = pd.DataFrame(
        {
            "event_id": [f"l{i}" for i in range(len(labelled))],
            "transaction_event_id": [f"t{i}" for i in labelled],
            "event_time": [tx.loc[i, "event_time"] + timedelta(hours=draw(st.integers(1, 24 * 20))) for i in labelled],
            "is_fraud": [draw(st.booleans()) for _ in labelled],
        }
    )
    return tx, labels


def oracle(tx: pd.DataFrame, labels: pd.DataFrame, at: datetime, merchant: str) -> dict[str, float] | None:
    mine = [row for row in tx.to_dict("records") if row["merchant_id"] == merchant]
    window = [row for row in mine if at - timedelta(days=30) < row["event_time"] <= at]
    if not window:
        return None
    day = [row for row in window if row["event_time"] > at - timedelta(days=1)]
    first_label: dict[str, dict[str, object]] = {}
    for label in sorted(labels.to_dict("records"), key=lambda r: r["event_time"]):
        first_label.setdefault(str(label["transaction_event_id"]), label)
    known = [first_label[row["event_id"]] for row in window if row["event_id"] in first_label]
    known = [label for label in known if label["event_time"] <= at]
    return {
        "merchant_tx_count_24h": len(day),
        "merchant_amount_mean_24h": math.fsum(r["amount"] for r in day) / len(day) if day else math.nan,
        "merchant_fraud_rate_30d": sum(bool(label["is_fraud"]) for label in known) / len(window),
        "merchant_labels_known_30d": len(known),
    }


@settings(max_examples=80, deadline=None)
@given(history(), st.integers(0, 24 * 45))
def test_snapshots_equal_the_oracle(data: tuple[pd.DataFrame, pd.DataFrame], hours: int) -> None:
    tx, labels = data
    at = T0 + timedelta(hours=hours)
    frame = merchant_snapshots(tx, labels, [at]).set_index("merchant_id")
    for merchant in ["m1", "m2", "m3"]:
        expected = oracle(tx, labels, at, merchant)
        if expected is None:
            assert merchant not in frame.index
            continue
        row = frame.loc[merchant]
        for name, value in expected.items():
            if math.isnan(value):
                assert math.isnan(row[name]), name
            else:
                assert math.isclose(row[name], value, rel_tol=1e-9), (name, row[name], value)
        assert row["event_timestamp"] == pd.Timestamp(at)


def test_snapshot_times_fall_on_the_hour_within_the_bounds() -> None:
    times = snapshot_times(T0 + timedelta(minutes=30), T0 + timedelta(hours=3))
    assert times == [T0 + timedelta(hours=h) for h in (1, 2, 3)]


def test_a_snapshot_is_stamped_when_it_becomes_available_and_keeps_its_own_time_as_of() -> None:
    tx = pd.DataFrame(
        {"event_id": ["t1"], "event_time": [T0 - timedelta(minutes=5)], "merchant_id": ["m1"], "amount": [10.0]}
    )
    labels = pd.DataFrame(columns=["event_id", "transaction_event_id", "event_time", "is_fraud"])
    frame = merchant_snapshots(tx, labels, [T0], available_after=timedelta(hours=1))
    assert frame.loc[0, "event_timestamp"] == pd.Timestamp(T0 + timedelta(hours=1))
    assert frame.loc[0, "merchant_snapshot_unix"] == T0.timestamp()
