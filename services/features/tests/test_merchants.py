"""Merchant snapshots equal a brute-force recomputation: only the window's transactions, only labels known then;
each stamped when it became available: when the slowest source partition reached its time plus the lateness."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berg_features.merchant_job import snapshot_times
from berg_features.merchants import (
    availability_changed_after,
    merchant_snapshots,
    snapshot_availability,
    visible_snapshots,
)
from tests.fraud_schema import MERCHANT_AS_OF, MERCHANT_AVAILABLE

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
        assert row["event_timestamp"] == pd.Timestamp(at)  # available at its own time unless told otherwise


def test_snapshot_times_fall_on_the_hour_within_the_bounds() -> None:
    times = snapshot_times(T0 + timedelta(minutes=30), T0 + timedelta(hours=3))
    assert times == [T0 + timedelta(hours=h) for h in (1, 2, 3)]


def test_a_snapshot_is_stamped_when_it_becomes_available_and_keeps_its_own_time_as_of() -> None:
    tx = pd.DataFrame(
        {"event_id": ["t1"], "event_time": [T0 - timedelta(minutes=5)], "merchant_id": ["m1"], "amount": [10.0]}
    )
    labels = pd.DataFrame(columns=["event_id", "transaction_event_id", "event_time", "is_fraud"])
    available = T0 + timedelta(hours=1, minutes=7, microseconds=3)
    frame = merchant_snapshots(tx, labels, [T0], available=[available])
    assert frame.loc[0, "event_timestamp"] == pd.Timestamp(available)
    assert frame.loc[0, MERCHANT_AVAILABLE] == available.timestamp()
    assert frame.loc[0, MERCHANT_AS_OF] == T0.timestamp()
    with pytest.raises(ValueError, match="before it"):
        merchant_snapshots(tx, labels, [T0], available=[T0 - timedelta(microseconds=1)])
    with pytest.raises(ValueError, match="availability times"):
        merchant_snapshots(tx, labels, [T0], available=[])


def crossings(times_by_partition: dict[int, list[datetime]]) -> pd.DataFrame:
    rows = [(at, partition) for partition, times in times_by_partition.items() for at in times]
    return pd.DataFrame(
        {
            "event_id": [f"t{i}" for i in range(len(rows))],
            "event_time": pd.to_datetime([at for at, _ in rows], utc=True),
            "source_partition": pd.Series([partition for _, partition in rows], dtype="int32"),
        }
    )


def availability_oracle(
    times_by_partition: dict[int, list[datetime]], at: datetime, lateness: timedelta, partitions: list[int]
) -> datetime | None:
    """The definition, written out: the moment the slowest partition reached ``at`` plus the lateness."""
    firsts = [min((t for t in times_by_partition.get(p, []) if t >= at + lateness), default=None) for p in partitions]
    return None if any(first is None for first in firsts) else max(first for first in firsts if first is not None)


def test_a_snapshot_is_available_when_the_slowest_partition_crosses_its_time_plus_the_lateness() -> None:
    hour = timedelta(hours=1)
    times = {
        0: [T0 + timedelta(minutes=50), T0 + timedelta(minutes=70)],
        1: [T0 + timedelta(minutes=65), T0 + timedelta(minutes=130)],
        2: [T0 + timedelta(minutes=61)],
    }
    frame = crossings(times)
    got = snapshot_availability(frame, [T0 - hour, T0, T0 + hour], lateness=hour, partitions=[0, 1, 2])
    # T0 - 1h crosses at T0: partition 1 last (01:05); T0 at 01:00: partition 0 last (01:10); T0 + 1h at
    # 02:00: partition 2 has not got there.
    assert got == [T0 + timedelta(minutes=65), T0 + timedelta(minutes=70), None]
    # A transaction exactly at the crossing counts; partitions outside the set do not.
    assert snapshot_availability(frame, [T0 - timedelta(minutes=10)], lateness=hour, partitions=[0]) == [
        T0 + timedelta(minutes=50)
    ]
    assert snapshot_availability(frame, [T0], lateness=hour, partitions=[]) == [None]
    assert snapshot_availability(frame, [T0], lateness=hour, partitions=[0, 1, 2, 3]) == [None]


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.integers(0, 3), st.lists(st.integers(0, 24 * 60 * 3), max_size=30), min_size=1, max_size=4),
    st.lists(st.integers(-24, 72), min_size=1, max_size=10),
    st.integers(0, 180),
    st.integers(0, 24 * 60 * 3),
)
def test_availability_equals_the_oracle_and_depends_only_on_what_is_read_from_the_first_crossing(
    minutes: dict[int, list[int]], hours: list[int], lateness_minutes: int, read_until: int
) -> None:
    times = {p: sorted(T0 + timedelta(minutes=m, microseconds=p) for m in ms) for p, ms in minutes.items()}
    partitions = sorted(times)
    snapshots = sorted(T0 + timedelta(hours=h) for h in hours)
    lateness = timedelta(minutes=lateness_minutes)
    whole = snapshot_availability(crossings(times), snapshots, lateness=lateness, partitions=partitions)
    assert whole == [availability_oracle(times, at, lateness, partitions) for at in snapshots]
    assert all(b is None or (a is not None and a <= b) for a, b in itertools.pairwise(whole)), "monotone"
    assert all(a is None or a >= at + lateness for at, a in zip(snapshots, whole, strict=True))
    # Reading only from the first crossing up to some point (what the job reads): the stamps found are
    # the same, the others not available yet.
    first, until = snapshots[0] + lateness, T0 + timedelta(minutes=read_until)
    part = {p: [t for t in ts if first <= t < until] for p, ts in times.items()}
    partial = snapshot_availability(crossings(part), snapshots, lateness=lateness, partitions=partitions)
    assert all(got is None or got == want for got, want in zip(partial, whole, strict=True))
    assert all(got == want for got, want in zip(partial, whole, strict=True) if want is not None and want < until)


def test_of_snapshots_available_at_one_moment_only_the_newest_is_stored() -> None:
    hour = timedelta(hours=1)
    times = [T0, T0 + hour, T0 + 2 * hour, T0 + 3 * hour]
    # The slowest partition jumped over the second and third crossings at once (a gap in its traffic).
    jump = T0 + 3 * hour + timedelta(minutes=30)
    available = [T0 + hour, jump, jump, T0 + 4 * hour]
    assert visible_snapshots(times, available, None) == [
        (T0, T0 + hour),
        (T0 + 2 * hour, jump),
        (T0 + 3 * hour, T0 + 4 * hour),
    ]
    # The next snapshot (past the last) decides whether the last is hidden; unknown, it stays.
    assert visible_snapshots(times, available, T0 + 4 * hour)[-1] == (T0 + 2 * hour, jump)
    # Not available yet: not stored.
    assert visible_snapshots(times, [*available[:3], None], None)[-1] == (T0 + 2 * hour, jump)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.integers(0, 2), st.lists(st.integers(0, 24 * 60 * 2), min_size=1, max_size=20), min_size=1, max_size=3
    ),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 24 * 60 * 2)), min_size=1, max_size=5),
    st.lists(st.integers(-12, 60), min_size=1, max_size=12),
    st.integers(0, 120),
)
def test_new_transactions_change_availability_only_of_snapshots_after_the_moment_they_give(
    minutes: dict[int, list[int]], arriving: list[tuple[int, int]], hours: list[int], lateness_minutes: int
) -> None:
    # Arrivals into known partitions only: the partitions the watermark is taken over.
    arriving = [(p, m) for p, m in arriving if p in minutes]
    if not arriving:
        return
    partitions = sorted(minutes)
    old = {p: sorted(T0 + timedelta(minutes=m, microseconds=p) for m in ms) for p, ms in minutes.items()}
    new = {
        p: sorted({*old[p], *(T0 + timedelta(minutes=m, microseconds=p) for q, m in arriving if q == p)}) for p in old
    }
    start = min(T0 + timedelta(minutes=m, microseconds=p) for p, m in arriving)
    lateness = timedelta(minutes=lateness_minutes)
    snapshots = sorted({T0 + timedelta(hours=h) for h in hours})
    (moment,) = availability_changed_after(crossings(new), [start], partitions=partitions)
    before = snapshot_availability(crossings(old), snapshots, lateness=lateness, partitions=partitions)
    after = snapshot_availability(crossings(new), snapshots, lateness=lateness, partitions=partitions)
    for at, was, now in zip(snapshots, before, after, strict=True):
        if was != now:
            assert moment is None or at + lateness > moment, (at, was, now, moment)
