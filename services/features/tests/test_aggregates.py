"""Streaming user aggregates equal a brute-force recomputation, whatever the arrival order."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berg_features.aggregates import DAY, HOUR, SECOND, Outcome, TransactionEvent, UserAggregator, UserRow
from tests.feature_oracle import assert_rows_equal, oracle_row
from tests.feature_oracle import oracle_accepts as accepts

pytestmark = pytest.mark.unit

LATENESS = 2 * HOUR


def oracle_accepts(arrivals: Sequence[TransactionEvent]) -> list[TransactionEvent]:
    return accepts(arrivals, LATENESS)


@st.composite
def arrivals(draw: st.DrawFn) -> list[TransactionEvent]:
    """Events of a few users over ~10 days, in order with local shuffles (some beyond the lateness), plus replays."""
    count = draw(st.integers(1, 60))
    events = []
    clock = 0
    for index in range(count):
        clock += draw(st.sampled_from([0, SECOND, 5 * 60 * SECOND, HOUR, 3 * HOUR, DAY // 2, 2 * DAY]))
        events.append(
            TransactionEvent(
                event_us=clock,
                event_id=f"e{index}",
                user_id=draw(st.sampled_from(["u1", "u2", "u3"])),
                merchant_id=draw(st.sampled_from(["m1", "m2", "m3", "m4"])),
                amount=draw(st.floats(0.01, 5000, allow_nan=False)),
                card_not_present=draw(st.booleans()),
            )
        )
    order = list(range(count))
    for _ in range(draw(st.integers(0, count))):
        i = draw(st.integers(0, count - 1))
        j = min(count - 1, i + draw(st.integers(1, 4)))
        order[i], order[j] = order[j], order[i]
    shuffled = [events[i] for i in order]
    replays = draw(st.lists(st.sampled_from(events), max_size=10))
    for replay in replays:
        shuffled.insert(draw(st.integers(0, len(shuffled))), replay)
    return shuffled


@settings(max_examples=300, deadline=None)
@given(arrivals())
def test_the_latest_emitted_row_of_every_transaction_equals_the_oracle(stream: list[TransactionEvent]) -> None:
    aggregator = UserAggregator(LATENESS)
    emitted: dict[tuple[str, int], UserRow] = {}
    outcomes = []
    for event in stream:
        result = aggregator.add(event)
        outcomes.append(result.outcome)
        for row in result.rows:
            emitted[(row.user_id, row.at_us)] = row  # later emissions supersede (Feast: newer created wins)

    accepted = oracle_accepts(stream)
    assert outcomes.count(Outcome.ACCEPTED) == len(accepted)
    expected_keys = {(e.user_id, e.event_us) for e in accepted}
    assert set(emitted) == expected_keys
    for (user_id, at_us), row in emitted.items():
        assert_rows_equal(row.features, oracle_row(accepted, user_id, at_us))


@settings(max_examples=100, deadline=None)
@given(arrivals())
def test_state_restored_from_the_log_continues_exactly_like_uninterrupted_state(stream: list[TransactionEvent]) -> None:
    """A restart mid-stream (state rebuilt from the accepted events so far) emits the same rows."""
    cut = len(stream) // 2
    whole = UserAggregator(LATENESS)
    for event in stream[:cut]:
        whole.add(event)
    restarted = UserAggregator(LATENESS)
    restarted.restore(oracle_accepts(stream[:cut]))
    for event in stream[cut:]:
        expected, actual = whole.add(event), restarted.add(event)
        assert actual.outcome == expected.outcome
        assert [(r.user_id, r.at_us, r.features) for r in actual.rows] == [
            (r.user_id, r.at_us, r.features) for r in expected.rows
        ]


def test_a_replayed_event_changes_nothing() -> None:
    aggregator = UserAggregator(LATENESS)
    event = TransactionEvent(10 * SECOND, "e1", "u1", "m1", 12.5, card_not_present=False)
    assert aggregator.add(event).outcome is Outcome.ACCEPTED
    replay = aggregator.add(event)
    assert replay.outcome is Outcome.DUPLICATE
    assert replay.rows == []


def test_an_event_beyond_the_lateness_is_refused_with_how_late_it_is() -> None:
    aggregator = UserAggregator(LATENESS)
    aggregator.add(TransactionEvent(10 * HOUR, "e1", "u1", "m1", 1.0, card_not_present=False))
    result = aggregator.add(TransactionEvent(7 * HOUR, "e2", "u1", "m1", 1.0, card_not_present=False))
    assert result.outcome is Outcome.LATE
    assert result.lateness_us == 3 * HOUR
    within = aggregator.add(TransactionEvent(9 * HOUR, "e3", "u1", "m2", 1.0, card_not_present=True))
    assert within.outcome is Outcome.ACCEPTED
    # The late-but-allowed event changes its own row and the later one.
    assert [row.at_us for row in within.rows] == [9 * HOUR, 10 * HOUR]
    assert within.rows[-1].features["tx_count_24h"] == 2


def test_state_stays_bounded_to_a_week_plus_the_lateness() -> None:
    aggregator = UserAggregator(LATENESS)
    for day in range(30):
        aggregator.add(TransactionEvent(day * DAY, f"e{day}", "u1", "m1", 1.0, card_not_present=False))
    assert aggregator.events <= 8 + 1
