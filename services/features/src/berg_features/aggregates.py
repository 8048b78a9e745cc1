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
replay and changes nothing.

Bounded work: :meth:`UserAggregator.accept` only inserts and marks the user's
rows from the event's time on as changed; :meth:`UserAggregator.flush` computes
every changed row once, in one pass per user over the sorted events with
sliding windows (counts by position, sums from exact integer prefix sums,
monotonic queues for the maxima, a counter of merchants). A micro-batch of ``n``
transactions of one user in reverse order costs one pass over the user's week,
not a rescan of it per row per event.

Bounded state: a user keeps the events of the last ``7 days + allowed_lateness``
behind their own watermark, which is all an acceptable transaction can need.
:meth:`UserAggregator.evict_idle` forgets users untouched since its previous
call whose newest event is more than ``7 days + 2 * allowed_lateness`` behind
the newest event held (the caller's stored log has them). Forgetting never
changes a result: the aggregator knows from when on it holds each user's
history, and :meth:`UserAggregator.history_needed` names the users whose stored
transactions must be read back (:meth:`UserAggregator.load_history`) before a
batch can be aggregated exactly; :meth:`UserAggregator.accept` refuses to
guess.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import collections
import enum
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from berg.features.schema import USER_AS_OF

__all__ = [
    "AddResult",
    "HistoryMissingError",
    "HistoryRequest",
    "Outcome",
    "TransactionEvent",
    "UserAggregator",
    "UserRow",
    "user_row",
]

SECOND = 1_000_000
"""Event times are integer microseconds since the epoch: exact, so a row's timestamp
is the transaction's own to the microsecond (the dataset builder relies on it)."""
HOUR = 3600 * SECOND
DAY = 24 * HOUR
WEEK = 7 * DAY
LONGEST_WINDOW = WEEK

_BEGINNING = -(1 << 62)
"""A time before any event: "complete from the beginning"."""


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


@dataclass(frozen=True)
class HistoryRequest:
    """Users whose stored transactions the aggregator must be given before it can take a batch."""

    user_ids: frozenset[str]
    start_us: int
    """Read the users' transactions with event time at or after this..."""
    end_us: int
    """...and before this (what the aggregator may have forgotten)."""


class HistoryMissingError(RuntimeError):
    """A transaction needs a user's history that was forgotten and not read back."""


def user_row(events: list[TransactionEvent], at_us: int) -> UserRow:
    """The feature row of one user at ``at_us`` from that user's ``events`` (sorted by time), by rescanning.

    The reference the streaming code is measured against (``bench/feature_disorder.py``);
    only events at or before ``at_us`` count; each window is ``(at - W, at]``.
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
        "amount_sum_24h": math.fsum(day_amounts),
        "amount_mean_24h": math.fsum(day_amounts) / len(day) if day else 0.0,
        "amount_max_24h": max(day_amounts, default=0.0),
        "amount_sum_7d": math.fsum(week_amounts),
        "amount_mean_7d": math.fsum(week_amounts) / len(week) if week else 0.0,
        "amount_max_7d": max(week_amounts, default=0.0),
        "distinct_merchants_24h": len({event.merchant_id for event in day}),
        "card_not_present_share_7d": sum(event.card_not_present for event in week) / len(week) if week else 0.0,
        USER_AS_OF: at_us / SECOND,
    }
    return UserRow(events[0].user_id, at_us, features)


_EXACT_ONE = 1 << 1074
"""Every finite float times this is an integer (1074: the exponent of the smallest subnormal)."""


def _exact(value: float) -> int:
    """``value`` as an integer count of 2**-1074: sums of these are exact."""
    numerator, denominator = value.as_integer_ratio()
    return numerator * (_EXACT_ONE // denominator)


def _rows_from(state: _UserState, user_id: str, since_us: int) -> list[UserRow]:
    """The rows at every distinct event time at or after ``since_us``, in one pass.

    Windows slide forward: counts are differences of positions, sums differences of
    exact prefix sums (``int / int`` rounds correctly, so a sum is ``math.fsum``'s),
    maxima the fronts of monotonic queues, distinct merchants a counter's size.
    """
    events, times = state.events, state.times
    first = bisect.bisect_left(times, since_us)
    if first >= len(events):
        return []
    start = bisect.bisect_right(times, times[first] - WEEK)
    amount_sums = [0, *itertools.accumulate(state.exact[start:])]
    card_not_present = [0, *itertools.accumulate(state.card_not_present[start:])]
    hour_left = day_left = week_left = right = start
    merchants: collections.Counter[str] = collections.Counter()
    day_maxima: collections.deque[tuple[int, float]] = collections.deque()
    week_maxima: collections.deque[tuple[int, float]] = collections.deque()
    rows = []
    position = first
    while position < len(events):
        at = times[position]
        end = bisect.bisect_right(times, at, lo=position)
        while right < end:
            event = events[right]
            merchants[event.merchant_id] += 1
            for maxima in (day_maxima, week_maxima):
                while maxima and maxima[-1][1] <= event.amount:
                    maxima.pop()
                maxima.append((right, event.amount))
            right += 1
        while times[day_left] <= at - DAY:
            merchant = events[day_left].merchant_id
            merchants[merchant] -= 1
            if not merchants[merchant]:
                del merchants[merchant]
            day_left += 1
        while times[week_left] <= at - WEEK:
            week_left += 1
        while times[hour_left] <= at - HOUR:
            hour_left += 1
        while day_maxima[0][0] < day_left:
            day_maxima.popleft()
        while week_maxima[0][0] < week_left:
            week_maxima.popleft()
        day_count, week_count = end - day_left, end - week_left
        day_sum = (amount_sums[end - start] - amount_sums[day_left - start]) / _EXACT_ONE
        week_sum = (amount_sums[end - start] - amount_sums[week_left - start]) / _EXACT_ONE
        features: dict[str, float | int] = {
            "tx_count_1h": end - hour_left,
            "tx_count_24h": day_count,
            "tx_count_7d": week_count,
            "amount_sum_24h": day_sum,
            "amount_mean_24h": day_sum / day_count,
            "amount_max_24h": day_maxima[0][1],
            "amount_sum_7d": week_sum,
            "amount_mean_7d": week_sum / week_count,
            "amount_max_7d": week_maxima[0][1],
            "distinct_merchants_24h": len(merchants),
            "card_not_present_share_7d": (card_not_present[end - start] - card_not_present[week_left - start])
            / week_count,
            USER_AS_OF: at / SECOND,
        }
        rows.append(UserRow(user_id, at, features))
        position = end
    return rows


@dataclass
class _UserState:
    events: list[TransactionEvent]
    """Sorted by (event time, id)."""
    times: list[int]
    """The events' times, for bisecting."""
    exact: list[int]
    """The events' amounts as exact integers (:func:`_exact`), for prefix sums."""
    card_not_present: list[int]
    """1 for an event without the card, else 0."""
    ids: set[str]
    complete_from: int
    """Every stored transaction of the user at or after this is held (older ones may be forgotten)."""
    changed_from: int | None = None
    """Rows at or after this event time changed since the last flush."""
    touched: bool = True
    """Accepted something since the last eviction pass."""

    @property
    def latest(self) -> int:
        return self.times[-1]

    def insert(self, event: TransactionEvent) -> None:
        # By time, then id among equal times (comparing dataclasses is slow; ties are rare).
        position = bisect.bisect_right(self.times, event.event_us)
        while position > 0 and self.times[position - 1] == event.event_us and event < self.events[position - 1]:
            position -= 1
        self.events.insert(position, event)
        self.times.insert(position, event.event_us)
        self.exact.insert(position, _exact(event.amount))
        self.card_not_present.insert(position, int(event.card_not_present))
        self.ids.add(event.event_id)

    def drop_before(self, count: int) -> None:
        """Forget the ``count`` oldest events."""
        for dropped in self.events[:count]:
            self.ids.discard(dropped.event_id)
        for column in (self.events, self.times, self.exact, self.card_not_present):
            del column[:count]


class UserAggregator:
    """The streaming state of many users; see the module docstring for the semantics."""

    def __init__(self, allowed_lateness_us: int) -> None:
        if allowed_lateness_us < 0:
            raise ValueError("allowed_lateness_us must be >= 0")
        self.allowed_lateness_us = allowed_lateness_us
        self._users: dict[str, _UserState] = {}
        self._changed: set[str] = set()
        self._newest: int | None = None
        """The newest event time ever held: the clock eviction runs on."""
        self._forgotten_before = _BEGINNING
        """A user not held has no stored transaction at or after this."""
        self._read_back: dict[str, int] = {}
        """Users read back with nothing found, and from when: they start complete from there."""

    @property
    def users(self) -> int:
        return len(self._users)

    @property
    def events(self) -> int:
        return sum(len(state.events) for state in self._users.values())

    @property
    def eviction_horizon_us(self) -> int | None:
        """Users whose newest event is before this are evicted when idle (None: nothing held yet)."""
        if self._newest is None:
            return None
        return self._newest - LONGEST_WINDOW - 2 * self.allowed_lateness_us

    def _complete_from(self, user_id: str) -> int:
        state = self._users.get(user_id)
        if state is not None:
            return state.complete_from
        return self._read_back.get(user_id, self._forgotten_before)

    def _refused(self, state: _UserState | None, event: TransactionEvent) -> bool:
        return state is not None and (
            event.event_id in state.ids or state.latest - event.event_us > self.allowed_lateness_us
        )

    def history_needed(self, events: Iterable[TransactionEvent]) -> HistoryRequest | None:
        """Which users' stored transactions must be read back before ``events`` are accepted.

        A transaction at ``t`` needs its user's transactions after ``t - 7 days`` (its window
        and the rows after it) and, for a user not held, the newest one (is it late?).
        """
        users: set[str] = set()
        start: int | None = None
        end: int | None = None
        for event in events:
            if self._refused(self._users.get(event.user_id), event):
                continue
            needed_from = event.event_us - LONGEST_WINDOW + 1
            held_from = self._complete_from(event.user_id)
            if held_from > needed_from:
                users.add(event.user_id)
                start = needed_from if start is None else min(start, needed_from)
                end = held_from if end is None else max(end, held_from)
        if start is None or end is None:
            return None
        return HistoryRequest(frozenset(users), start, end)

    def load_history(self, request: HistoryRequest, events: Iterable[TransactionEvent]) -> int:
        """Take back the requested users' stored transactions (those in the request's range);
        emits nothing. Returns how many were new to the state."""
        added = self._merge((event for event in events if event.user_id in request.user_ids), request.start_us)
        for user_id in request.user_ids:
            state = self._users.get(user_id)
            if state is None:
                self._read_back[user_id] = request.start_us
            else:
                state.complete_from = min(state.complete_from, request.start_us)
        return added

    def accept(self, event: TransactionEvent) -> AddResult:
        """Take one transaction and mark the rows it changes; :meth:`flush` computes them.

        Raises:
            HistoryMissingError: the user's history it needs was forgotten and not read back
                (see :meth:`history_needed`).
        """
        state = self._users.get(event.user_id)
        if state is not None and event.event_id in state.ids:
            return AddResult(Outcome.DUPLICATE, [])
        behind = 0 if state is None else max(0, state.latest - event.event_us)
        if behind > self.allowed_lateness_us:
            return AddResult(Outcome.LATE, [], behind)
        held_from = self._complete_from(event.user_id)
        if held_from > event.event_us - LONGEST_WINDOW + 1:
            raise HistoryMissingError(
                f"user {event.user_id}'s transactions before {held_from} us are not held: read them back first"
            )
        if state is None:
            state = _UserState([], [], [], [], set(), held_from)
            self._users[event.user_id] = state
            self._read_back.pop(event.user_id, None)
        state.insert(event)
        state.touched = True
        state.changed_from = event.event_us if state.changed_from is None else min(state.changed_from, event.event_us)
        self._changed.add(event.user_id)
        self._newest = event.event_us if self._newest is None else max(self._newest, event.event_us)
        return AddResult(Outcome.ACCEPTED, [], behind)

    def flush(self) -> list[UserRow]:
        """Every row changed since the last flush, each once, oldest first per user."""
        rows: list[UserRow] = []
        for user_id in sorted(self._changed):
            state = self._users[user_id]
            assert state.changed_from is not None
            rows.extend(_rows_from(state, user_id, state.changed_from))
            state.changed_from = None
            self._prune(state)
        self._changed.clear()
        self._read_back.clear()
        return rows

    def add(self, event: TransactionEvent) -> AddResult:
        """:meth:`accept` one transaction and :meth:`flush`: what to emit for it alone."""
        result = self.accept(event)
        return AddResult(result.outcome, self.flush(), result.lateness_us)

    def restore(self, events: Iterable[TransactionEvent], complete_from_us: int | None = None) -> int:
        """Rebuild state from already-processed transactions (e.g. the label store's log),
        emitting nothing. Returns how many were new to the state.

        Args:
            events: the stored transactions.
            complete_from_us: they are every stored transaction at or after this (None: all of them).
        """
        added = self._merge(events, complete_from_us)
        if complete_from_us is not None:
            self._forgotten_before = max(self._forgotten_before, complete_from_us)
        return added

    def _merge(self, events: Iterable[TransactionEvent], complete_from_us: int | None) -> int:
        """Insert stored transactions without marking rows; they are every stored transaction
        of their users at or after ``complete_from_us`` (None: all of them)."""
        added = 0
        merged: set[str] = set()
        for event in sorted(events):
            state = self._users.get(event.user_id)
            if state is None:
                start = _BEGINNING if complete_from_us is None else complete_from_us
                state = _UserState([], [], [], [], set(), start, touched=False)
                self._users[event.user_id] = state
            if event.event_id in state.ids:
                continue
            state.insert(event)
            merged.add(event.user_id)
            self._newest = event.event_us if self._newest is None else max(self._newest, event.event_us)
            added += 1
        for user_id in merged:
            state = self._users[user_id]
            if complete_from_us is not None:
                state.complete_from = min(state.complete_from, complete_from_us)
            if state.changed_from is None:
                self._prune(state)
        return added

    def evict_idle(self) -> list[str]:
        """Forget the users that accepted nothing since the previous call and whose newest
        event is behind :attr:`eviction_horizon_us`; returns their ids."""
        horizon = self.eviction_horizon_us
        evicted = []
        for user_id, state in self._users.items():
            if horizon is not None and not state.touched and state.changed_from is None and state.latest < horizon:
                evicted.append(user_id)
            state.touched = False
        for user_id in evicted:
            state = self._users.pop(user_id)
            self._forgotten_before = max(self._forgotten_before, state.latest + 1)
        return evicted

    def forget(self, user_ids: Iterable[str]) -> None:
        """Drop users' state (their partition moved to another instance, or a batch failed):
        the caller restores them from its log before they are aggregated again."""
        for user_id in user_ids:
            self._users.pop(user_id, None)
            self._changed.discard(user_id)
            self._read_back.pop(user_id, None)

    def user_ids(self) -> list[str]:
        return list(self._users)

    def watermark(self, user_id: str) -> int | None:
        """The latest event time held for a user (microseconds), if any."""
        state = self._users.get(user_id)
        return None if state is None else state.latest

    def _prune(self, state: _UserState) -> None:
        horizon = state.latest - LONGEST_WINDOW - self.allowed_lateness_us
        cut = bisect.bisect_right(state.times, horizon)
        if cut:
            state.drop_before(cut)
