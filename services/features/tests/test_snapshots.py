"""Snapshot views equal a brute-force recomputation: each aggregate over its own window's events, only labels
known then; each stamped when it became available: when the slowest source partition reached its time plus the
lateness. The fraud case's merchant view, and a view of another domain (the clicks case's campaigns)."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berg.features.feature_set import SnapshotView
from berg.features.label_store import ARRIVAL_TIME
from berg.usecase import LabelJoin
from berg_clicks.use_case import clicks
from berg_features.snapshots import (
    availability_changed_after,
    next_snapshot_after,
    snapshot_availability,
    snapshot_columns,
    snapshot_rows,
    snapshot_times,
    visible_snapshots,
)
from berg_fraud.features import MERCHANT_SNAPSHOTS
from berg_fraud.use_case import fraud

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, tzinfo=UTC)
FRAUD_JOIN = fraud().label_join
CLICKS = clicks()
(CAMPAIGNS,) = CLICKS.features.snapshots


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
    # Some labels reach the platform long after they were issued: they count from their arrival.
    delays = [timedelta(hours=draw(st.sampled_from([0, 0, 1, 30 * 24]))) for _ in labelled]
    labels[ARRIVAL_TIME] = [time + delay for time, delay in zip(labels["event_time"], delays, strict=True)]
    return tx, labels


def oracle(tx: pd.DataFrame, labels: pd.DataFrame, at: datetime, merchant: str) -> dict[str, float] | None:
    mine = [row for row in tx.to_dict("records") if row["merchant_id"] == merchant]
    window = [row for row in mine if at - timedelta(days=30) < row["event_time"] <= at]
    if not window:
        return None
    day = [row for row in window if row["event_time"] > at - timedelta(days=1)]
    first_label: dict[str, dict[str, Any]] = {}
    for label in sorted(labels.to_dict("records"), key=lambda r: (r[ARRIVAL_TIME], r["event_id"])):
        first_label.setdefault(str(label["transaction_event_id"]), label)
    known = [first_label[row["event_id"]] for row in window if row["event_id"] in first_label]
    known = [label for label in known if label[ARRIVAL_TIME] <= at]
    return {
        "merchant_tx_count_24h": len(day),
        "merchant_amount_mean_24h": math.fsum(r["amount"] for r in day) / len(day) if day else math.nan,
        "merchant_fraud_rate_30d": sum(bool(label["is_fraud"]) for label in known) / len(window),
        "merchant_labels_known_30d": len(known),
    }


def merchant_rows(
    tx: pd.DataFrame, labels: pd.DataFrame, times: list[datetime], available: list[datetime] | None = None
) -> pd.DataFrame:
    return snapshot_rows(MERCHANT_SNAPSHOTS, FRAUD_JOIN, tx, labels, times, available=available)


@settings(max_examples=80, deadline=None)
@given(history(), st.integers(0, 24 * 45))
def test_merchant_snapshots_equal_the_oracle(data: tuple[pd.DataFrame, pd.DataFrame], hours: int) -> None:
    tx, labels = data
    at = T0 + timedelta(hours=hours)
    frame = merchant_rows(tx, labels, [at]).set_index("merchant_id")
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


def impressions_and_clicks() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two campaigns over two days: impressions at chosen hours, clicks (some twice, one a late "no") after them."""
    hours = {"c1": [0, 3, 10, 20, 26, 29, 30, 31], "c2": [1, 2, 28, 44, 47]}
    rows = [(campaign, hour) for campaign, times in hours.items() for hour in times]
    impressions = pd.DataFrame(
        {
            "event_id": [f"i{n}" for n in range(len(rows))],
            "event_time": pd.to_datetime([T0 + timedelta(hours=hour, minutes=n) for n, (_, hour) in enumerate(rows)]),
            "viewer_id": [f"v{n % 3}" for n in range(len(rows))],
            "campaign_id": [campaign for campaign, _ in rows],
            "bid": [0.5 + n / 10 for n in range(len(rows))],
            "slot": [n % 4 for n in range(len(rows))],
        }
    )
    # (impression, minutes after it, clicked): the first verdict of an impression counts.
    verdicts = [(0, 5, True), (1, 30, False), (2, 2, True), (2, 90, False), (4, 10, True), (5, 400, True)]
    verdicts += [(6, 1, False), (7, 59, True), (8, 3, True), (9, 600, True), (10, 20, False), (11, 5, True)]
    clicks_frame = pd.DataFrame(
        {
            "event_id": [f"k{n}" for n in range(len(verdicts))],
            "event_time": [impressions.loc[i, "event_time"] + timedelta(minutes=m) for i, m, _ in verdicts],
            "impression_event_id": [f"i{i}" for i, _, _ in verdicts],
            "viewer_id": [impressions.loc[i, "viewer_id"] for i, _, _ in verdicts],
            "clicked": [clicked for _, _, clicked in verdicts],
        }
    )
    # One verdict reaches the platform a day after it was given.
    clicks_frame[ARRIVAL_TIME] = clicks_frame["event_time"] + pd.to_timedelta([0] * 5 + [24] + [0] * 6, unit="h")
    return impressions, clicks_frame


def brute_force(
    view: SnapshotView, join: LabelJoin, events: pd.DataFrame, labels: pd.DataFrame, at: datetime
) -> dict[str, dict[str, float]]:
    """The declaration read literally, one key and one aggregate at a time, with plain Python."""
    first: dict[str, dict[str, Any]] = {}
    for label in sorted(labels.to_dict("records"), key=lambda r: (r[ARRIVAL_TIME], r["event_id"])):
        first.setdefault(str(label[join.subject_id]), label)
    rows = events.to_dict("records")
    result: dict[str, dict[str, float]] = {}
    for key in sorted({str(row[view.entity.key]) for row in rows}):
        mine = [row for row in rows if row[view.entity.key] == key]
        if not any(at - view.window < row["event_time"] <= at for row in mine):
            continue
        values: dict[str, float] = {}
        for aggregate in view.aggregates:
            inside = [row for row in mine if at - aggregate.window < row["event_time"] <= at]
            verdicts = [first.get(str(row[join.event_id])) for row in inside]
            known = [label for label in verdicts if label is not None and label[ARRIVAL_TIME] <= at]
            if aggregate.function == "count":
                values[aggregate.name] = len(inside)
            elif aggregate.function == "labels_known":
                values[aggregate.name] = len(known)
            elif aggregate.function == "positive_share":
                positives = sum(bool(label[join.target]) for label in known)
                values[aggregate.name] = positives / len(inside) if inside else math.nan
            else:
                assert aggregate.field is not None
                values[aggregate.name] = (
                    math.fsum(row[aggregate.field] for row in inside) / len(inside) if inside else math.nan
                )
        result[key] = values
    return result


def test_a_snapshot_view_of_another_domain_equals_the_declaration_read_literally() -> None:
    impressions, clicks_frame = impressions_and_clicks()
    times = snapshot_times(T0, T0 + timedelta(days=3), CAMPAIGNS.every)
    frame = snapshot_rows(CAMPAIGNS, CLICKS.label_join, impressions, clicks_frame, times)
    assert list(frame.columns) == snapshot_columns(CAMPAIGNS)
    assert list(frame.columns) == [
        "campaign_id",
        "campaign_impressions_6h",
        "campaign_click_rate_1d",
        "campaign_snapshot_unix",
        "campaign_available_unix",
        "event_timestamp",
    ]
    compared = 0
    for at in times:
        expected = brute_force(CAMPAIGNS, CLICKS.label_join, impressions, clicks_frame, at)
        got = frame[frame["campaign_snapshot_unix"] == at.timestamp()].set_index("campaign_id")
        assert sorted(got.index) == sorted(expected), at
        for campaign, values in expected.items():
            for name, value in values.items():
                actual = got.loc[campaign, name]
                assert (math.isnan(actual) and math.isnan(value)) or actual == value, (at, campaign, name)
            assert got.loc[campaign, "campaign_available_unix"] == at.timestamp()
            compared += 1
    # A campaign has a row while an impression is less than a day old: c1 from 00:00 to 55:00 (its last at
    # 31:07), c2 from 02:00 to 26:00 (02:09) and from 29:00 (28:10) to 71:00 (47:12).
    assert compared == 56 + 25 + 43
    c1 = frame[frame["campaign_id"] == "c1"].set_index("campaign_snapshot_unix")
    # The 6-hour count is 0, the row still there, once its impressions are over 6 hours old but within the day;
    # an impression at 31:07 is not in the snapshot at 31:00.
    assert c1.loc[(T0 + timedelta(hours=40)).timestamp(), "campaign_impressions_6h"] == 0
    assert c1.loc[(T0 + timedelta(hours=31)).timestamp(), "campaign_impressions_6h"] == 3
    assert c1.loc[(T0 + timedelta(hours=32)).timestamp(), "campaign_impressions_6h"] == 4
    assert frame["campaign_impressions_6h"].dtype == "int64"
    assert frame["campaign_click_rate_1d"].dtype == "float64"


def test_snapshot_times_fall_on_the_period_within_the_bounds() -> None:
    times = snapshot_times(T0 + timedelta(minutes=30), T0 + timedelta(hours=3), timedelta(hours=1))
    assert times == [T0 + timedelta(hours=h) for h in (1, 2, 3)]
    quarter = timedelta(minutes=15)
    assert snapshot_times(T0 + timedelta(minutes=1), T0 + timedelta(minutes=45), quarter) == [
        T0 + quarter,
        T0 + 2 * quarter,
        T0 + 3 * quarter,
    ]


def test_the_next_snapshot_is_the_first_boundary_strictly_after_a_moment() -> None:
    hour = timedelta(hours=1)
    assert next_snapshot_after(T0, hour) == T0 + hour
    assert next_snapshot_after(T0 + timedelta(minutes=59, seconds=59), hour) == T0 + hour
    assert next_snapshot_after(T0 - timedelta(microseconds=1), hour) == T0
    assert next_snapshot_after(T0 + timedelta(minutes=7), timedelta(minutes=15)) == T0 + timedelta(minutes=15)


def test_a_snapshot_is_stamped_when_it_becomes_available_and_keeps_its_own_time_as_of() -> None:
    tx = pd.DataFrame(
        {"event_id": ["t1"], "event_time": [T0 - timedelta(minutes=5)], "merchant_id": ["m1"], "amount": [10.0]}
    )
    labels = pd.DataFrame(columns=["event_id", "transaction_event_id", "event_time", "is_fraud", ARRIVAL_TIME])
    available = T0 + timedelta(hours=1, minutes=7, microseconds=3)
    frame = merchant_rows(tx, labels, [T0], available=[available])
    assert frame.loc[0, "event_timestamp"] == pd.Timestamp(available)
    assert frame.loc[0, MERCHANT_SNAPSHOTS.available] == available.timestamp()
    assert frame.loc[0, MERCHANT_SNAPSHOTS.as_of] == T0.timestamp()
    with pytest.raises(ValueError, match="before it"):
        merchant_rows(tx, labels, [T0], available=[T0 - timedelta(microseconds=1)])
    with pytest.raises(ValueError, match="availability times"):
        merchant_rows(tx, labels, [T0], available=[])


def test_no_event_in_the_window_gives_no_row_and_the_declared_columns() -> None:
    impressions, clicks_frame = impressions_and_clicks()
    frame = snapshot_rows(CAMPAIGNS, CLICKS.label_join, impressions, clicks_frame, [T0 - timedelta(hours=1)])
    assert frame.empty
    assert list(frame.columns) == snapshot_columns(CAMPAIGNS)


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
