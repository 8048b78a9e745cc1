"""Per-user aggregates in event-time windows, computed as events stream in.

Semantics (the brute-force oracle in the tests is this paragraph, written out):
the row for a user at event time ``T`` summarises that user's accepted
transactions with event time in ``(T - W, T]`` for each window ``W`` (1 hour,
24 hours, 7 days), so it includes every transaction at ``T`` itself. A row is
emitted for each accepted transaction, at its event time.

Out of order: a transaction may arrive up to ``allowed_lateness`` behind the
latest event time seen for its user (the user's watermark). It is inserted in
place, and the rows of every later transaction of the user are recomputed and
emitted again (with a newer created timestamp, which Feast prefers). A
transaction further behind is refused as late; the caller dead-letters it.

Idempotent: a transaction whose ``event_id`` the user's state already holds is a
replay and changes nothing. State is bounded: a user keeps the events of the
last ``7 days + allowed_lateness`` behind their watermark, which is all a
recomputation can need.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from berg.features.schema import USER_AS_OF

__all__ = ["AddResult", "Outcome", "TransactionEvent", "UserAggregator", "UserRow", "user_row"]

SECOND = 1_000_000
"""Event times are integer microseconds since the epoch: exact, so a row's timestamp
is the transaction's own to the microsecond (the dataset builder relies on it)."""
HOUR = 3600 * SECOND
DAY = 24 * HOUR
WEEK = 7 * DAY


@dataclass(frozen=True, order=True)
class TransactionEvent:
    """What the aggregates need of a transaction; ordered by event time, then id."""

    event_us: int
    event_id: str
    user_id: str = field(compare=False)
    merchant_id: str = field(compare=False)
    amount: float = field(compare=False)
    card_not_present: bool = field(compare=False)


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass(frozen=True)
class UserRow:
    """A user's features as of ``at_us`` (the event time of a transaction of theirs)."""

    user_id: str
    at_us: int
    features: dict[str, float | int]


@dataclass(frozen=True)
class AddResult:
    """What adding one transaction did: its outcome and the rows to (re-)emit, oldest first."""

    outcome: Outcome
    rows: list[UserRow]
    lateness_us: int = 0
    """How far behind the user's watermark the event was (0 when in order)."""


def user_row(events: list[TransactionEvent], at_us: int) -> UserRow:
    """The feature row of one user at ``at_us`` from that user's ``events`` (sorted by time).

    Only events at or before ``at_us`` count; each window is ``(at - W, at]``.
    """
    times = [event.event_us for event in events]
    end = bisect.bisect_right(times, at_us)

    def window(length: int) -> list[TransactionEvent]:
        return events[bisect.bisect_right(times, at_us - length) : end]

    hour, day, week = window(HOUR), window(DAY), window(WEEK)
    day_amounts = [event.amount for event in day]
    week_amounts = [event.amount for event in week]
    features: dict[str, float | int] = {
        "tx_count_1h": len(hour),
        "tx_count_24h": len(day),
        "tx_count_7d": len(week),
        "amount_sum_24h": sum(day_amounts),
        "amount_mean_24h": sum(day_amounts) / len(day) if day else 0.0,
        "amount_max_24h": max(day_amounts, default=0.0),
        "amount_sum_7d": sum(week_amounts),
        "amount_mean_7d": sum(week_amounts) / len(week) if week else 0.0,
        "amount_max_7d": max(week_amounts, default=0.0),
        "distinct_merchants_24h": len({event.merchant_id for event in day}),
        "card_not_present_share_7d": sum(event.card_not_present for event in week) / len(week) if week else 0.0,
        USER_AS_OF: at_us / SECOND,
    }
    return UserRow(events[0].user_id, at_us, features)


@dataclass
class _UserState:
    events: list[TransactionEvent] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    watermark: int | None = None


class UserAggregator:
    """The streaming state of many users; see the module docstring for the semantics."""

    def __init__(self, allowed_lateness_us: int) -> None:
        if allowed_lateness_us < 0:
            raise ValueError("allowed_lateness_us must be >= 0")
        self.allowed_lateness_us = allowed_lateness_us
        self._users: dict[str, _UserState] = {}

    @property
    def users(self) -> int:
        return len(self._users)

    @property
    def events(self) -> int:
        return sum(len(state.events) for state in self._users.values())

    def add(self, event: TransactionEvent) -> AddResult:
        """Take one transaction; returns what to emit (nothing for a replay or a late event)."""
        state = self._users.setdefault(event.user_id, _UserState())
        if event.event_id in state.ids:
            return AddResult(Outcome.DUPLICATE, [])
        behind = 0 if state.watermark is None else max(0, state.watermark - event.event_us)
        if behind > self.allowed_lateness_us:
            return AddResult(Outcome.LATE, [], behind)
        position = bisect.bisect_right(state.events, event)
        state.events.insert(position, event)
        state.ids.add(event.event_id)
        state.watermark = event.event_us if state.watermark is None else max(state.watermark, event.event_us)
        # Every row at or after the new event's time changes; rows sharing its time too.
        first = bisect.bisect_left([e.event_us for e in state.events], event.event_us)
        affected = sorted({e.event_us for e in state.events[first:]})
        rows = [user_row(state.events, at) for at in affected]
        self._prune(state)
        return AddResult(Outcome.ACCEPTED, rows, behind)

    def restore(self, events: Iterable[TransactionEvent]) -> int:
        """Rebuild state from already-processed transactions (e.g. the label store's log),
        emitting nothing. Returns how many were new to the state."""
        added = 0
        for event in sorted(events):
            state = self._users.setdefault(event.user_id, _UserState())
            if event.event_id in state.ids:
                continue
            bisect.insort_right(state.events, event)
            state.ids.add(event.event_id)
            state.watermark = event.event_us if state.watermark is None else max(state.watermark, event.event_us)
            added += 1
        for state in self._users.values():
            self._prune(state)
        return added

    def forget(self, user_ids: Iterable[str]) -> None:
        """Drop users' state (their partition moved to another instance)."""
        for user_id in user_ids:
            self._users.pop(user_id, None)

    def user_ids(self) -> list[str]:
        return list(self._users)

    def watermark(self, user_id: str) -> int | None:
        """The latest event time held for a user (microseconds), if any."""
        state = self._users.get(user_id)
        return None if state is None else state.watermark

    def _prune(self, state: _UserState) -> None:
        if state.watermark is None:
            return
        horizon = state.watermark - WEEK - self.allowed_lateness_us
        cut = bisect.bisect_right([e.event_us for e in state.events], horizon)
        if cut:
            for dropped in state.events[:cut]:
                state.ids.discard(dropped.event_id)
            del state.events[:cut]
