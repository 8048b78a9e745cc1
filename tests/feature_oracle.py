"""Brute-force definitions of the user aggregates, for tests to compare the streaming code with."""

from __future__ import annotations

import math
from collections.abc import Sequence

from berg.features.schema import USER_AS_OF, USER_FEATURES
from berg_features.aggregates import DAY, HOUR, SECOND, WEEK, TransactionEvent

__all__ = ["assert_rows_equal", "oracle_accepts", "oracle_row"]


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


def assert_rows_equal(actual: dict[str, float | int], expected: dict[str, float | int], context: str = "") -> None:
    assert set(actual) == set(expected) == {spec.name for spec in USER_FEATURES}, context
    for name, value in expected.items():
        assert math.isclose(actual[name], value, rel_tol=1e-9, abs_tol=1e-9), (context, name, actual[name], value)
