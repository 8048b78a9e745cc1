"""Brute-force definitions of the user aggregates, for tests to compare the streaming code with."""

from __future__ import annotations

import math
from collections.abc import Sequence

from berg.features.schema import USER_AS_OF, USER_FEATURES
from berg_features.aggregates import DAY, HOUR, SECOND, WEEK, TransactionEvent

__all__ = ["assert_rows_equal", "disordered", "oracle_accepts", "oracle_row"]


def oracle_row(events: Sequence[TransactionEvent], user_id: str, at_us: int) -> dict[str, float | int]:
    """The definition, written out: each window is (at - W, at] over the user's accepted events."""
    mine = [e for e in events if e.user_id == user_id and e.event_us <= at_us]

    def within(length: int) -> list[TransactionEvent]:
        return [e for e in mine if e.event_us > at_us - length]

    hour, day, week = within(HOUR), within(DAY), within(WEEK)
    return {
        "tx_count_1h": len(hour),
        "tx_count_24h": len(day),
        "tx_count_7d": len(week),
        "amount_sum_24h": math.fsum(e.amount for e in day),
        "amount_mean_24h": math.fsum(e.amount for e in day) / len(day),
        "amount_max_24h": max(e.amount for e in day),
        "amount_sum_7d": math.fsum(e.amount for e in week),
        "amount_mean_7d": math.fsum(e.amount for e in week) / len(week),
        "amount_max_7d": max(e.amount for e in week),
        "distinct_merchants_24h": len({e.merchant_id for e in day}),
        "card_not_present_share_7d": sum(e.card_not_present for e in week) / len(week),
        USER_AS_OF: at_us / SECOND,
    }


def oracle_accepts(arrivals: Sequence[TransactionEvent], lateness_us: int) -> list[TransactionEvent]:
    """Which arrivals count: first sighting of an id, at most ``lateness_us`` behind the user's latest so far."""
    seen: set[str] = set()
    latest: dict[str, int] = {}
    accepted = []
    for event in arrivals:
        if event.event_id in seen:
            continue
        if event.user_id in latest and latest[event.user_id] - event.event_us > lateness_us:
            continue
        seen.add(event.event_id)
        latest[event.user_id] = max(latest.get(event.user_id, event.event_us), event.event_us)
        accepted.append(event)
    return accepted


def disordered(
    count: int, reversed_share: float, *, users: int = 1, spacing_us: int = SECOND
) -> list[TransactionEvent]:
    """``count`` transactions ``spacing_us`` apart, delivered with a share of them newest-first.

    ``reversed_share`` 0: in event-time order; 1: the whole stream newest-first (the worst case
    of issue 15: every event is earlier than all before it); in between: that share of the
    blocks of 100 consecutive events, spread evenly, each delivered newest-first. Users take
    turns; amounts, merchants and channels vary deterministically.
    """
    events = [
        TransactionEvent(
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


def assert_rows_equal(actual: dict[str, float | int], expected: dict[str, float | int], context: str = "") -> None:
    assert set(actual) == set(expected) == {spec.name for spec in USER_FEATURES}, context
    for name, value in expected.items():
        assert math.isclose(actual[name], value, rel_tol=1e-9, abs_tol=1e-9), (context, name, actual[name], value)
