"""Brute-force definitions of the streaming aggregates, for tests to compare the streaming code with.

:func:`oracle_row` is the fraud case's user aggregates written out by hand, :func:`declared_oracle`
any declared view's (:mod:`berg.features.aggregation`) read literally.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from hypothesis import strategies as st

from berg.features.aggregation import AggregationView
from berg_features.aggregates import DAY, HOUR, SECOND, WEEK, WindowEvent
from tests.fraud_schema import USER_AS_OF, USER_FEATURES

__all__ = [
    "amount",
    "arrive_shuffled",
    "assert_rows_equal",
    "declared_oracle",
    "disordered",
    "oracle_accepts",
    "oracle_row",
    "transaction_event",
]


def transaction_event(
    event_us: int, event_id: str, user_id: str, merchant_id: str, amount: float, card_not_present: bool
) -> WindowEvent:
    """What the fraud case's user aggregates read of a transaction."""
    channel = "card_not_present" if card_not_present else "card_present"
    return WindowEvent(event_us, event_id, user_id, {"merchant_id": merchant_id, "amount": amount, "channel": channel})


def amount(event: WindowEvent) -> float:
    return float(event.values["amount"])


def oracle_row(events: Sequence[WindowEvent], user_id: str, at_us: int) -> dict[str, float | int]:
    """The fraud case's user aggregates, written out: each window is (at - W, at] over the user's accepted events."""
    mine = [e for e in events if e.key == user_id and e.event_us <= at_us]

    def within(length: int) -> list[WindowEvent]:
        return [e for e in mine if e.event_us > at_us - length]

    hour, day, week = within(HOUR), within(DAY), within(WEEK)
    return {
        "tx_count_1h": len(hour),
        "tx_count_24h": len(day),
        "tx_count_7d": len(week),
        "amount_sum_24h": math.fsum(amount(e) for e in day),
        "amount_mean_24h": math.fsum(amount(e) for e in day) / len(day),
        "amount_max_24h": max(amount(e) for e in day),
        "amount_sum_7d": math.fsum(amount(e) for e in week),
        "amount_mean_7d": math.fsum(amount(e) for e in week) / len(week),
        "amount_max_7d": max(amount(e) for e in week),
        "distinct_merchants_24h": len({e.values["merchant_id"] for e in day}),
        "card_not_present_share_7d": sum(e.values["channel"] == "card_not_present" for e in week) / len(week),
        USER_AS_OF: at_us / SECOND,
    }


def declared_oracle(
    view: AggregationView, events: Sequence[WindowEvent], key: str, at_us: int
) -> dict[str, float | int]:
    """Any declared view, read literally: each aggregate over the entity's events in (at - window, at]."""
    mine = [e for e in events if e.key == key and e.event_us <= at_us]
    row: dict[str, float | int] = {}
    for aggregate in view.aggregates:
        window = [e for e in mine if e.event_us > at_us - aggregate.window_us]
        values = [e.values[aggregate.field] for e in window] if aggregate.field else []
        if aggregate.function == "count":
            row[aggregate.name] = len(window)
        elif aggregate.function == "sum":
            row[aggregate.name] = math.fsum(float(v) for v in values)
        elif aggregate.function == "mean":
            row[aggregate.name] = math.fsum(float(v) for v in values) / len(values)
        elif aggregate.function == "max":
            row[aggregate.name] = max(float(v) for v in values)
        elif aggregate.function == "distinct":
            row[aggregate.name] = len(set(values))
        else:
            row[aggregate.name] = sum(v == aggregate.value for v in values) / len(values)
    row[view.as_of] = at_us / SECOND
    return row


def arrive_shuffled(draw: st.DrawFn, events: Sequence[WindowEvent], *, reach: int, replays: int) -> list[WindowEvent]:
    """``events`` (in event-time order) as they arrive: local swaps up to ``reach`` places apart (some
    beyond the lateness), and up to ``replays`` of them delivered again anywhere."""
    count = len(events)
    order = list(range(count))
    for _ in range(draw(st.integers(0, count))):
        i = draw(st.integers(0, count - 1))
        j = min(count - 1, i + draw(st.integers(1, reach)))
        order[i], order[j] = order[j], order[i]
    shuffled = [events[i] for i in order]
    for replay in draw(st.lists(st.sampled_from(events), max_size=replays)):
        shuffled.insert(draw(st.integers(0, len(shuffled))), replay)
    return shuffled


def oracle_accepts(arrivals: Sequence[WindowEvent], lateness_us: int) -> list[WindowEvent]:
    """Which arrivals count: first sighting of an id, at most ``lateness_us`` behind the user's latest so far."""
    seen: set[str] = set()
    latest: dict[str, int] = {}
    accepted = []
    for event in arrivals:
        if event.event_id in seen:
            continue
        if event.key in latest and latest[event.key] - event.event_us > lateness_us:
            continue
        seen.add(event.event_id)
        latest[event.key] = max(latest.get(event.key, event.event_us), event.event_us)
        accepted.append(event)
    return accepted


def disordered(count: int, reversed_share: float, *, users: int = 1, spacing_us: int = SECOND) -> list[WindowEvent]:
    """``count`` transactions ``spacing_us`` apart, delivered with a share of them newest-first.

    ``reversed_share`` 0: in event-time order; 1: the whole stream newest-first (the worst case
    of issue 15: every event is earlier than all before it); in between: that share of the
    blocks of 100 consecutive events, spread evenly, each delivered newest-first. Users take
    turns; amounts, merchants and channels vary deterministically.
    """
    events = [
        transaction_event(
            event_us=index * spacing_us,
            event_id=f"e{index:07d}",
            user_id=f"u{index % users}",
            merchant_id=f"m{index * 7 % 13}",
            amount=round(1 + (index * 7919 % 1000) / 7, 2),
            card_not_present=index % 3 == 0,
        )
        for index in range(count)
    ]
    if reversed_share >= 1:
        return events[::-1]
    block = 100
    blocks = [events[start : start + block] for start in range(0, count, block)]
    flipped = round(reversed_share * len(blocks))
    step = len(blocks) / flipped if flipped else 0
    chosen = {int(i * step) for i in range(flipped)}
    return [event for i, chunk in enumerate(blocks) for event in (chunk[::-1] if i in chosen else chunk)]


def assert_rows_equal(
    actual: dict[str, float | int],
    expected: dict[str, float | int],
    context: str = "",
    *,
    names: set[str] | None = None,
) -> None:
    assert set(actual) == set(expected) == (names or {spec.name for spec in USER_FEATURES}), context
    for name, value in expected.items():
        assert math.isclose(actual[name], value, rel_tol=1e-9, abs_tol=1e-9), (context, name, actual[name], value)
