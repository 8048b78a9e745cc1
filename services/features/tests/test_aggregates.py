"""Streaming user aggregates equal a brute-force recomputation, whatever the arrival order."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berg_features.aggregates import (
    DAY,
    HOUR,
    SECOND,
    HistoryMissingError,
    Outcome,
    WindowAggregator,
    WindowEvent,
    WindowRow,
)
from tests.feature_oracle import arrive_shuffled, assert_rows_equal, disordered, oracle_row, transaction_event
from tests.feature_oracle import oracle_accepts as accepts
from tests.fraud_schema import USER_AGGREGATES

pytestmark = pytest.mark.unit

LATENESS = 2 * HOUR


def oracle_accepts(arrivals: Sequence[WindowEvent]) -> list[WindowEvent]:
    return accepts(arrivals, LATENESS)


@st.composite
def arrivals(draw: st.DrawFn) -> list[WindowEvent]:
    """Events of a few users over ~10 days, in order with local shuffles (some beyond the lateness), plus replays."""
    count = draw(st.integers(1, 60))
    events = []
    clock = 0
    for index in range(count):
        clock += draw(st.sampled_from([0, SECOND, 5 * 60 * SECOND, HOUR, 3 * HOUR, DAY // 2, 2 * DAY]))
        events.append(
            transaction_event(
                event_us=clock,
                event_id=f"e{index}",
                user_id=draw(st.sampled_from(["u1", "u2", "u3"])),
                merchant_id=draw(st.sampled_from(["m1", "m2", "m3", "m4"])),
                amount=draw(st.floats(0.01, 5000, allow_nan=False)),
                card_not_present=draw(st.booleans()),
            )
        )
    return arrive_shuffled(draw, events, reach=4, replays=10)


@settings(max_examples=300, deadline=None)
@given(arrivals())
def test_the_latest_emitted_row_of_every_transaction_equals_the_oracle(stream: list[WindowEvent]) -> None:
    aggregator = WindowAggregator(USER_AGGREGATES, LATENESS)
    emitted: dict[tuple[str, int], WindowRow] = {}
    outcomes = []
    for event in stream:
        result = aggregator.add(event)
        outcomes.append(result.outcome)
        for row in result.rows:
            emitted[(row.key, row.at_us)] = row  # later emissions supersede (Feast: newer created wins)

    accepted = oracle_accepts(stream)
    assert outcomes.count(Outcome.ACCEPTED) == len(accepted)
    expected_keys = {(e.key, e.event_us) for e in accepted}
    assert set(emitted) == expected_keys
    for (user_id, at_us), row in emitted.items():
        assert_rows_equal(row.features, oracle_row(accepted, user_id, at_us))


@settings(max_examples=100, deadline=None)
@given(arrivals())
def test_state_restored_from_the_log_continues_exactly_like_uninterrupted_state(stream: list[WindowEvent]) -> None:
    """A restart mid-stream (state rebuilt from the accepted events so far) emits the same rows."""
    cut = len(stream) // 2
    whole = WindowAggregator(USER_AGGREGATES, LATENESS)
    for event in stream[:cut]:
        whole.add(event)
    restarted = WindowAggregator(USER_AGGREGATES, LATENESS)
    restarted.restore(oracle_accepts(stream[:cut]))
    for event in stream[cut:]:
        expected, actual = whole.add(event), restarted.add(event)
        assert actual.outcome == expected.outcome
        assert [(r.key, r.at_us, r.features) for r in actual.rows] == [
            (r.key, r.at_us, r.features) for r in expected.rows
        ]


def test_a_replayed_event_changes_nothing() -> None:
    aggregator = WindowAggregator(USER_AGGREGATES, LATENESS)
    event = transaction_event(10 * SECOND, "e1", "u1", "m1", 12.5, card_not_present=False)
    assert aggregator.add(event).outcome is Outcome.ACCEPTED
    replay = aggregator.add(event)
    assert replay.outcome is Outcome.DUPLICATE
    assert replay.rows == []


def test_an_event_beyond_the_lateness_is_refused_with_how_late_it_is() -> None:
    aggregator = WindowAggregator(USER_AGGREGATES, LATENESS)
    aggregator.add(transaction_event(10 * HOUR, "e1", "u1", "m1", 1.0, card_not_present=False))
    result = aggregator.add(transaction_event(7 * HOUR, "e2", "u1", "m1", 1.0, card_not_present=False))
    assert result.outcome is Outcome.LATE
    assert result.lateness_us == 3 * HOUR
    within = aggregator.add(transaction_event(9 * HOUR, "e3", "u1", "m2", 1.0, card_not_present=True))
    assert within.outcome is Outcome.ACCEPTED
    # The late-but-allowed event changes its own row and the later one.
    assert [row.at_us for row in within.rows] == [9 * HOUR, 10 * HOUR]
    assert within.rows[-1].features["tx_count_24h"] == 2


def test_state_stays_bounded_to_a_week_plus_the_lateness() -> None:
    aggregator = WindowAggregator(USER_AGGREGATES, LATENESS)
    for day in range(30):
        aggregator.add(transaction_event(day * DAY, f"e{day}", "u1", "m1", 1.0, card_not_present=False))
    assert aggregator.events <= 8 + 1


# Batches, eviction and history read back: the service's way of driving the aggregator.


@st.composite
def arrivals_with_a_backfill(draw: st.DrawFn) -> list[WindowEvent]:
    """:func:`arrivals` plus a user whose transactions (in their own order) arrive far behind everyone
    else's, some replayed: they are idle long enough to be evicted and return needing their history."""
    stream = draw(arrivals())
    newest = max(event.event_us for event in stream)
    times = sorted(draw(st.lists(st.integers(0, newest), min_size=1, max_size=8)))
    backfill = [
        transaction_event(
            time, f"b{index}", "u9", draw(st.sampled_from(["m1", "m5"])), float(index + 1), index % 2 == 0
        )
        for index, time in enumerate(times)
    ]
    positions = sorted(draw(st.lists(st.integers(0, len(stream)), min_size=len(backfill), max_size=len(backfill))))
    for offset, (position, event) in enumerate(zip(positions, backfill, strict=True)):
        stream.insert(position + offset, event)
    for replay in draw(st.lists(st.sampled_from(backfill), max_size=3)):
        stream.insert(draw(st.integers(stream.index(replay) + 1, len(stream))), replay)
    return stream


def drive(
    stream: Sequence[WindowEvent], cuts: Sequence[int], *, evict: bool, aggregator: WindowAggregator | None = None
) -> tuple[dict[tuple[str, int], WindowRow], list[Outcome], int, WindowAggregator]:
    """Feed ``stream`` in micro-batches cut at ``cuts`` as the handler does: read back what the
    aggregator asks for from the log of accepted events, accept, flush, log, evict idle users."""
    aggregator = aggregator or WindowAggregator(USER_AGGREGATES, LATENESS)
    log: list[WindowEvent] = []
    emitted: dict[tuple[str, int], WindowRow] = {}
    outcomes: list[Outcome] = []
    rows = 0
    bounds = [0, *cuts, len(stream)]
    for start, end in itertools.pairwise(bounds):
        batch = stream[start:end]
        request = aggregator.history_needed(batch)
        if request is not None:
            stored = [e for e in log if e.key in request.keys and request.start_us <= e.event_us < request.end_us]
            aggregator.load_history(request, stored)
        for event in batch:
            result = aggregator.accept(event)
            outcomes.append(result.outcome)
            if result.outcome is Outcome.ACCEPTED:
                log.append(event)
        flushed = aggregator.flush()
        rows += len(flushed)
        for row in flushed:
            emitted[(row.key, row.at_us)] = row
        if evict:
            aggregator.evict_idle()
    return emitted, outcomes, rows, aggregator


@settings(max_examples=300, deadline=None)
@given(arrivals_with_a_backfill(), st.data())
def test_batches_with_eviction_and_history_read_back_equal_the_oracle(
    stream: list[WindowEvent], data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=len(stream))))
    emitted, outcomes, _, _ = drive(stream, cuts, evict=True)

    accepted = oracle_accepts(stream)
    assert outcomes.count(Outcome.ACCEPTED) == len(accepted)
    assert set(emitted) == {(e.key, e.event_us) for e in accepted}
    for (user_id, at_us), row in emitted.items():
        assert_rows_equal(row.features, oracle_row(accepted, user_id, at_us), f"{user_id}@{at_us}")


def test_an_evicted_user_is_read_back_before_their_next_transaction() -> None:
    aggregator = WindowAggregator(USER_AGGREGATES, LATENESS)
    aggregator.add(transaction_event(0, "a1", "idle", "m1", 10.0, card_not_present=False))
    aggregator.add(transaction_event(DAY, "a2", "idle", "m2", 20.0, card_not_present=True))
    aggregator.add(transaction_event(20 * DAY, "b1", "busy", "m1", 1.0, card_not_present=False))
    aggregator.evict_idle()  # everyone was touched since the last pass: nobody goes
    assert aggregator.entities == 2
    assert aggregator.evict_idle() == ["idle"]
    assert aggregator.entities == 1

    returning = transaction_event(DAY + HOUR, "a3", "idle", "m1", 30.0, card_not_present=False)
    with pytest.raises(HistoryMissingError):
        aggregator.accept(returning)
    request = aggregator.history_needed([returning])
    assert request is not None
    assert request.keys == {"idle"}
    assert request.start_us <= DAY + HOUR - 7 * DAY + 1
    assert request.end_us > DAY
    stored = [
        transaction_event(0, "a1", "idle", "m1", 10.0, card_not_present=False),
        transaction_event(DAY, "a2", "idle", "m2", 20.0, card_not_present=True),
    ]
    aggregator.load_history(request, stored)
    assert aggregator.accept(returning).outcome is Outcome.ACCEPTED
    (row,) = aggregator.flush()
    assert row.features["tx_count_7d"] == 3
    assert row.features["tx_count_24h"] == 2
    # Read back, a replay is known again and a transaction too far behind the user is late again.
    assert aggregator.add(stored[1]).outcome is Outcome.DUPLICATE
    assert aggregator.add(transaction_event(HOUR, "a0", "idle", "m1", 1.0, card_not_present=False)).outcome is (
        Outcome.LATE
    )


def test_idle_users_are_evicted_and_state_stays_bounded() -> None:
    """A thousand users, each active on one day of 100: memory holds about a week's worth."""
    aggregator = WindowAggregator(USER_AGGREGATES, LATENESS)
    most = 0
    for day in range(100):
        for user in range(10):
            aggregator.add(
                transaction_event(day * DAY + user * SECOND, f"e{day}-{user}", f"u{day}-{user}", "m1", 1.0, False)
            )
        aggregator.evict_idle()
        most = max(most, aggregator.entities)
    assert most <= 10 * 10  # a user goes once it is a week and twice the lateness behind, and idle for a pass
    assert aggregator.entities <= 10 * 10


@pytest.mark.parametrize("reversed_share", [0.0, 0.1, 1.0])
def test_disordered_streams_equal_the_oracle_and_each_row_is_computed_once_per_batch(reversed_share: float) -> None:
    """Issue 15's worst case and milder ones: the rows equal the oracle, and a micro-batch emits each
    changed row once (a batch of newest-first events of one user is one pass, not a rescan per event)."""
    count, batch = 1200, 300
    stream = disordered(count, reversed_share)
    cuts = list(range(batch, count, batch))
    emitted, outcomes, rows, _ = drive(stream, cuts, evict=False, aggregator=WindowAggregator(USER_AGGREGATES, HOUR))

    assert outcomes.count(Outcome.ACCEPTED) == count
    assert set(emitted) == {(e.key, e.event_us) for e in stream}
    for (user_id, at_us), row in emitted.items():
        assert_rows_equal(row.features, oracle_row(stream, user_id, at_us), f"{user_id}@{at_us}")
    # Each batch emits the rows from its earliest event on, once: newest-first, batch k re-emits k * batch rows.
    expected_rows = 0
    seen: list[int] = []
    for start in range(0, count, batch):
        chunk = [event.event_us for event in stream[start : start + batch]]
        seen.extend(chunk)
        expected_rows += sum(1 for time in seen if time >= min(chunk))
    assert rows == expected_rows
    if reversed_share == 1.0:
        assert rows == sum(batch * k for k in range(1, count // batch + 1))  # 3,000, where one row per event per
        # later event was 720,600
