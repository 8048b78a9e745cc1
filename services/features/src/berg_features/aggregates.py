"""Streaming aggregates of a declared view, in event-time windows, computed as events stream in.

What is computed is data: an :class:`~berg.features.aggregation.AggregationView` of the use
case (count, sum, mean, max, distinct, share over an entity key and a trailing window). How is
this module, the same for every view.

Semantics (the brute-force oracle in the tests is this paragraph, written out, and
:func:`rescan_row` is its reference implementation): the row for an entity at event time
``T`` summarises that entity's accepted events with event time in ``(T - W, T]`` for each
aggregate's window ``W``, so it includes every event at ``T`` itself. A row is emitted for each
accepted event, at its event time.

Out of order: an event may arrive up to ``allowed_lateness`` behind the latest event time seen
for its entity (the entity's watermark). It is inserted in place, and the rows of every later
event of the entity are recomputed and emitted again (with a newer created timestamp, which
Feast prefers). An event further behind is refused as late; the caller dead-letters it.

Idempotent: an event whose ``event_id`` the entity's state already holds is a replay and
changes nothing.

Bounded work: :meth:`WindowAggregator.accept` only inserts and marks the entity's rows from the
event's time on as changed; :meth:`WindowAggregator.flush` computes every changed row once, in
one pass per entity over the sorted events with sliding windows (counts by position, sums and
shares from exact integer prefix sums, monotonic queues for the maxima, counters for distinct
values). A micro-batch of ``n`` events of one entity in reverse order costs one pass over the
entity's longest window, not a rescan of it per row per event.

Bounded state: an entity keeps the events of the last ``longest window + allowed_lateness``
behind its own watermark, which is all an acceptable event can need.
:meth:`WindowAggregator.evict_idle` forgets entities untouched since its previous call whose
newest event is more than ``longest window + 2 * allowed_lateness`` behind the newest event
held (the caller's stored log has them). Forgetting never changes a result: the aggregator
knows from when on it holds each entity's history, and :meth:`WindowAggregator.history_needed`
names the entities whose stored events must be read back
(:meth:`WindowAggregator.load_history`) before a batch can be aggregated exactly;
:meth:`WindowAggregator.accept` refuses to guess.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import collections
import enum
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from berg.features.aggregation import AggregationView, WindowedAggregate

__all__ = [
    "AddResult",
    "HistoryMissingError",
    "HistoryRequest",
    "Outcome",
    "WindowAggregator",
    "WindowEvent",
    "WindowRow",
    "event_of",
    "rescan_row",
]

SECOND = 1_000_000
"""Event times are integer microseconds since the epoch: exact, so a row's timestamp
is the event's own to the microsecond (the dataset builder relies on it)."""
HOUR = 3600 * SECOND
DAY = 24 * HOUR
WEEK = 7 * DAY

_BEGINNING = -(1 << 62)
"""A time before any event: "complete from the beginning"."""

Value = float | str | bool


@dataclass(frozen=True, order=True)
class WindowEvent:
    """What the aggregates need of an event; ordered by event time, then id."""

    event_us: int
    event_id: str
    key: str = field(compare=False)
    """The entity it belongs to."""
    values: Mapping[str, Value] = field(compare=False)
    """The fields the view's aggregates read."""


def event_of(view: AggregationView, event_us: int, event_id: object, source: Any) -> WindowEvent:
    """The :class:`WindowEvent` of ``source`` (a contract instance, or a stored row with the same
    attributes): its key and the fields ``view`` reads, numbers as floats, the rest as text."""
    numeric = view.numeric_fields
    values: dict[str, Value] = {}
    for name in view.fields:
        raw = getattr(source, name)
        values[name] = float(raw) if name in numeric else str(raw)
    return WindowEvent(event_us, str(event_id), str(getattr(source, view.key)), values)


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass(frozen=True)
class WindowRow:
    """An entity's features as of ``at_us`` (the event time of an event of theirs)."""

    key: str
    at_us: int
    features: dict[str, float | int]


@dataclass(frozen=True)
class AddResult:
    """What adding one event did: its outcome and the rows to (re-)emit, oldest first."""

    outcome: Outcome
    rows: list[WindowRow]
    lateness_us: int = 0
    """How far behind the entity's watermark the event was (0 when in order)."""


@dataclass(frozen=True)
class HistoryRequest:
    """Entities whose stored events the aggregator must be given before it can take a batch."""

    keys: frozenset[str]
    start_us: int
    """Read the entities' events with event time at or after this..."""
    end_us: int
    """...and before this (what the aggregator may have forgotten)."""


class HistoryMissingError(RuntimeError):
    """An event needs an entity's history that was forgotten and not read back."""


def _aggregate_by_rescan(aggregate: WindowedAggregate, window: list[WindowEvent]) -> float | int:
    if aggregate.function == "count":
        return len(window)
    assert aggregate.field is not None
    values = [event.values[aggregate.field] for event in window]
    if aggregate.function == "distinct":
        return len(set(values))
    if aggregate.function == "share":
        return sum(value == aggregate.value for value in values) / len(values) if values else 0.0
    numbers = [float(value) for value in values]
    if aggregate.function == "sum":
        return math.fsum(numbers)
    if aggregate.function == "mean":
        return math.fsum(numbers) / len(numbers) if numbers else 0.0
    return max(numbers, default=0.0)


def rescan_row(view: AggregationView, events: list[WindowEvent], at_us: int) -> WindowRow:
    """The row of one entity at ``at_us`` from that entity's ``events`` (sorted by time), by rescanning.

    The reference the streaming code is measured against (``bench/feature_disorder.py``);
    only events at or before ``at_us`` count; each window is ``(at - W, at]``.
    """
    times = [event.event_us for event in events]
    end = bisect.bisect_right(times, at_us)
    features: dict[str, float | int] = {
        aggregate.name: _aggregate_by_rescan(
            aggregate, events[bisect.bisect_right(times, at_us - aggregate.window_us) : end]
        )
        for aggregate in view.aggregates
    }
    features[view.as_of] = at_us / SECOND
    return WindowRow(events[0].key, at_us, features)


_EXACT_ONE = 1 << 1074
"""Every finite float times this is an integer (1074: the exponent of the smallest subnormal)."""


def _exact(value: float) -> int:
    """``value`` as an integer count of 2**-1074: sums of these are exact."""
    numerator, denominator = value.as_integer_ratio()
    return numerator * (_EXACT_ONE // denominator)


_COUNT, _SUM, _MEAN, _SHARE, _MAX, _DISTINCT = range(6)
_CODES = {"count": _COUNT, "sum": _SUM, "mean": _MEAN, "share": _SHARE, "max": _MAX, "distinct": _DISTINCT}


@dataclass(frozen=True)
class _Plan:
    """What a view's aggregates need kept per event and per window, worked out once."""

    view: AggregationView
    windows: tuple[int, ...]
    summed: tuple[str, ...]
    """Fields kept as exact integers for prefix sums (``sum``, ``mean``)."""
    shares: tuple[tuple[str, str], ...]
    """(field, value) pairs kept as 0/1 indicators for prefix sums (``share``)."""
    maxima: tuple[tuple[str, int], ...]
    """(field, window) of each ``max``."""
    distinct: tuple[tuple[str, int], ...]
    """(field, window) of each ``distinct``."""
    slots: tuple[tuple[str, int, int, str, str], ...]
    """Per aggregate, in order: (name, function code, window, field or "", value or ""); plain values,
    because the row loop reads them for every row."""

    @classmethod
    def of(cls, view: AggregationView) -> _Plan:
        def pairs(function: str) -> tuple[tuple[str, int], ...]:
            return tuple(
                dict.fromkeys(
                    (a.field, a.window_us) for a in view.aggregates if a.function == function and a.field is not None
                )
            )

        return cls(
            view=view,
            windows=tuple(sorted({a.window_us for a in view.aggregates})),
            summed=tuple(dict.fromkeys(a.field for a in view.aggregates if a.function in ("sum", "mean") and a.field)),
            shares=tuple(
                dict.fromkeys(
                    (a.field, a.value) for a in view.aggregates if a.function == "share" and a.field and a.value
                )
            ),
            maxima=pairs("max"),
            distinct=pairs("distinct"),
            slots=tuple(
                (a.name, _CODES[a.function], a.window_us, a.field or "", a.value or "") for a in view.aggregates
            ),
        )


def _rows_from(plan: _Plan, state: _KeyState, key: str, since_us: int) -> list[WindowRow]:
    """The rows at every distinct event time at or after ``since_us``, in one pass.

    Windows slide forward: counts are differences of positions, sums and shares differences of
    exact prefix sums (``int / int`` rounds correctly, so a sum is ``math.fsum``'s), maxima the
    fronts of monotonic queues, distinct values a counter's size.
    """
    events, times = state.events, state.times
    first = bisect.bisect_left(times, since_us)
    if first >= len(events):
        return []
    start = bisect.bisect_right(times, times[first] - plan.windows[-1])
    sums = {name: [0, *itertools.accumulate(state.exact[name][start:])] for name in plan.summed}
    shares = {pair: [0, *itertools.accumulate(state.indicators[pair][start:])] for pair in plan.shares}
    left = dict.fromkeys(plan.windows, start)
    right = start
    counters: dict[tuple[str, int], collections.Counter[Value]] = {
        pair: collections.Counter() for pair in plan.distinct
    }
    maxima: dict[tuple[str, int], collections.deque[tuple[int, float]]] = {
        pair: collections.deque() for pair in plan.maxima
    }
    counted = {
        window: [(name, counters[(name, w)]) for name, w in plan.distinct if w == window] for window in plan.windows
    }
    view = plan.view
    rows = []
    position = first
    while position < len(events):
        at = times[position]
        end = bisect.bisect_right(times, at, lo=position)
        while right < end:
            values = events[right].values
            for (name, _), counter in counters.items():
                counter[values[name]] += 1
            for (name, _), queue in maxima.items():
                number = float(values[name])
                while queue and queue[-1][1] <= number:
                    queue.pop()
                queue.append((right, number))
            right += 1
        for window in plan.windows:
            position_left = left[window]
            while times[position_left] <= at - window:
                for name, counter in counted[window]:
                    value = events[position_left].values[name]
                    counter[value] -= 1
                    if not counter[value]:
                        del counter[value]
                position_left += 1
            left[window] = position_left
        for (_, window), queue in maxima.items():
            while queue[0][0] < left[window]:
                queue.popleft()
        features: dict[str, float | int] = {}
        totals: dict[tuple[str, int], float] = {}
        for name, code, window, read, value in plan.slots:
            since = left[window]
            if code == _COUNT:
                features[name] = end - since
            elif code in (_SUM, _MEAN):
                total = totals.get((read, window))
                if total is None:
                    # A sum of 2**-1074 units divided back: the costly step, once per field and window.
                    prefix = sums[read]
                    total = totals[(read, window)] = (prefix[end - start] - prefix[since - start]) / _EXACT_ONE
                features[name] = total if code == _SUM else total / (end - since)
            elif code == _SHARE:
                prefix = shares[(read, value)]
                features[name] = (prefix[end - start] - prefix[since - start]) / (end - since)
            elif code == _MAX:
                features[name] = maxima[(read, window)][0][1]
            else:
                features[name] = len(counters[(read, window)])
        features[view.as_of] = at / SECOND
        rows.append(WindowRow(key, at, features))
        position = end
    return rows


@dataclass
class _KeyState:
    events: list[WindowEvent]
    """Sorted by (event time, id)."""
    times: list[int]
    """The events' times, for bisecting."""
    exact: dict[str, list[int]]
    """Per summed field, the events' values as exact integers (:func:`_exact`), for prefix sums."""
    indicators: dict[tuple[str, str], list[int]]
    """Per (field, value) of a share, 1 for an event holding the value, else 0."""
    ids: set[str]
    complete_from: int
    """Every stored event of the entity at or after this is held (older ones may be forgotten)."""
    changed_from: int | None = None
    """Rows at or after this event time changed since the last flush."""
    touched: bool = True
    """Accepted something since the last eviction pass."""

    @classmethod
    def empty(cls, plan: _Plan, complete_from: int, *, touched: bool = True) -> _KeyState:
        return cls(
            [],
            [],
            {name: [] for name in plan.summed},
            {pair: [] for pair in plan.shares},
            set(),
            complete_from,
            touched=touched,
        )

    @property
    def latest(self) -> int:
        return self.times[-1]

    def insert(self, event: WindowEvent) -> None:
        # By time, then id among equal times (comparing dataclasses is slow; ties are rare).
        position = bisect.bisect_right(self.times, event.event_us)
        while position > 0 and self.times[position - 1] == event.event_us and event < self.events[position - 1]:
            position -= 1
        self.events.insert(position, event)
        self.times.insert(position, event.event_us)
        for name, column in self.exact.items():
            column.insert(position, _exact(float(event.values[name])))
        for (name, value), indicator in self.indicators.items():
            indicator.insert(position, int(event.values[name] == value))
        self.ids.add(event.event_id)

    def drop_before(self, count: int) -> None:
        """Forget the ``count`` oldest events."""
        for dropped in self.events[:count]:
            self.ids.discard(dropped.event_id)
        del self.events[:count]
        del self.times[:count]
        for numbers in (*self.exact.values(), *self.indicators.values()):
            del numbers[:count]


class WindowAggregator:
    """The streaming state of many entities under one view; see the module docstring for the semantics."""

    def __init__(self, view: AggregationView, allowed_lateness_us: int) -> None:
        if allowed_lateness_us < 0:
            raise ValueError("allowed_lateness_us must be >= 0")
        self.view = view
        self.allowed_lateness_us = allowed_lateness_us
        self._plan = _Plan.of(view)
        self._longest = view.longest_window_us
        self._states: dict[str, _KeyState] = {}
        self._changed: set[str] = set()
        self._newest: int | None = None
        """The newest event time ever held: the clock eviction runs on."""
        self._forgotten_before = _BEGINNING
        """An entity not held has no stored event at or after this."""
        self._read_back: dict[str, int] = {}
        """Entities read back with nothing found, and from when: they start complete from there."""

    @property
    def longest_window_us(self) -> int:
        """The view's longest window: how far back an event's row reaches."""
        return self._longest

    @property
    def entities(self) -> int:
        return len(self._states)

    @property
    def events(self) -> int:
        return sum(len(state.events) for state in self._states.values())

    @property
    def eviction_horizon_us(self) -> int | None:
        """Entities whose newest event is before this are evicted when idle (None: nothing held yet)."""
        if self._newest is None:
            return None
        return self._newest - self._longest - 2 * self.allowed_lateness_us

    def _complete_from(self, key: str) -> int:
        state = self._states.get(key)
        if state is not None:
            return state.complete_from
        return self._read_back.get(key, self._forgotten_before)

    def _refused(self, state: _KeyState | None, event: WindowEvent) -> bool:
        return state is not None and (
            event.event_id in state.ids or state.latest - event.event_us > self.allowed_lateness_us
        )

    def history_needed(self, events: Iterable[WindowEvent]) -> HistoryRequest | None:
        """Which entities' stored events must be read back before ``events`` are accepted.

        An event at ``t`` needs its entity's events after ``t`` minus the longest window (its
        windows and the rows after it) and, for an entity not held, the newest one (is it late?).
        """
        keys: set[str] = set()
        start: int | None = None
        end: int | None = None
        for event in events:
            if self._refused(self._states.get(event.key), event):
                continue
            needed_from = event.event_us - self._longest + 1
            held_from = self._complete_from(event.key)
            if held_from > needed_from:
                keys.add(event.key)
                start = needed_from if start is None else min(start, needed_from)
                end = held_from if end is None else max(end, held_from)
        if start is None or end is None:
            return None
        return HistoryRequest(frozenset(keys), start, end)

    def load_history(self, request: HistoryRequest, events: Iterable[WindowEvent]) -> int:
        """Take back the requested entities' stored events (those in the request's range);
        emits nothing. Returns how many were new to the state."""
        added = self._merge((event for event in events if event.key in request.keys), request.start_us)
        for key in request.keys:
            state = self._states.get(key)
            if state is None:
                self._read_back[key] = request.start_us
            else:
                state.complete_from = min(state.complete_from, request.start_us)
        return added

    def outcome_of(self, event: WindowEvent) -> AddResult:
        """What :meth:`accept` would decide for ``event``, changing nothing: a caller computing
        several views of one event asks each of them before any takes it."""
        state = self._states.get(event.key)
        if state is not None and event.event_id in state.ids:
            return AddResult(Outcome.DUPLICATE, [])
        behind = 0 if state is None else max(0, state.latest - event.event_us)
        if behind > self.allowed_lateness_us:
            return AddResult(Outcome.LATE, [], behind)
        return AddResult(Outcome.ACCEPTED, [], behind)

    def accept(self, event: WindowEvent) -> AddResult:
        """Take one event and mark the rows it changes; :meth:`flush` computes them.

        Raises:
            HistoryMissingError: the entity's history it needs was forgotten and not read back
                (see :meth:`history_needed`).
        """
        verdict = self.outcome_of(event)
        if verdict.outcome is not Outcome.ACCEPTED:
            return verdict
        state = self._states.get(event.key)
        held_from = self._complete_from(event.key)
        if held_from > event.event_us - self._longest + 1:
            raise HistoryMissingError(
                f"{self.view.key} {event.key}'s events before {held_from} us are not held: read them back first"
            )
        if state is None:
            state = _KeyState.empty(self._plan, held_from)
            self._states[event.key] = state
            self._read_back.pop(event.key, None)
        state.insert(event)
        state.touched = True
        state.changed_from = event.event_us if state.changed_from is None else min(state.changed_from, event.event_us)
        self._changed.add(event.key)
        self._newest = event.event_us if self._newest is None else max(self._newest, event.event_us)
        return verdict

    def flush(self) -> list[WindowRow]:
        """Every row changed since the last flush, each once, oldest first per entity."""
        rows: list[WindowRow] = []
        for key in sorted(self._changed):
            state = self._states[key]
            assert state.changed_from is not None
            rows.extend(_rows_from(self._plan, state, key, state.changed_from))
            state.changed_from = None
            self._prune(state)
        self._changed.clear()
        self._read_back.clear()
        return rows

    def add(self, event: WindowEvent) -> AddResult:
        """:meth:`accept` one event and :meth:`flush`: what to emit for it alone."""
        result = self.accept(event)
        return AddResult(result.outcome, self.flush(), result.lateness_us)

    def restore(self, events: Iterable[WindowEvent], complete_from_us: int | None = None) -> int:
        """Rebuild state from already-processed events (e.g. the label store's log),
        emitting nothing. Returns how many were new to the state.

        Args:
            events: the stored events.
            complete_from_us: they are every stored event at or after this (None: all of them).
        """
        added = self._merge(events, complete_from_us)
        if complete_from_us is not None:
            self._forgotten_before = max(self._forgotten_before, complete_from_us)
        return added

    def _merge(self, events: Iterable[WindowEvent], complete_from_us: int | None) -> int:
        """Insert stored events without marking rows; they are every stored event
        of their entities at or after ``complete_from_us`` (None: all of them)."""
        added = 0
        merged: set[str] = set()
        for event in sorted(events):
            state = self._states.get(event.key)
            if state is None:
                start = _BEGINNING if complete_from_us is None else complete_from_us
                state = _KeyState.empty(self._plan, start, touched=False)
                self._states[event.key] = state
            if event.event_id in state.ids:
                continue
            state.insert(event)
            merged.add(event.key)
            self._newest = event.event_us if self._newest is None else max(self._newest, event.event_us)
            added += 1
        for key in merged:
            state = self._states[key]
            if complete_from_us is not None:
                state.complete_from = min(state.complete_from, complete_from_us)
            if state.changed_from is None:
                self._prune(state)
        return added

    def evict_idle(self) -> list[str]:
        """Forget the entities that accepted nothing since the previous call and whose newest
        event is behind :attr:`eviction_horizon_us`; returns their keys."""
        horizon = self.eviction_horizon_us
        evicted = []
        for key, state in self._states.items():
            if horizon is not None and not state.touched and state.changed_from is None and state.latest < horizon:
                evicted.append(key)
            state.touched = False
        for key in evicted:
            state = self._states.pop(key)
            self._forgotten_before = max(self._forgotten_before, state.latest + 1)
        return evicted

    def forget(self, keys: Iterable[str]) -> None:
        """Drop entities' state (their partition moved to another instance, or a batch failed):
        the caller restores them from its log before they are aggregated again."""
        for key in keys:
            self._states.pop(key, None)
            self._changed.discard(key)
            self._read_back.pop(key, None)

    def keys(self) -> list[str]:
        return list(self._states)

    def watermark(self, key: str) -> int | None:
        """The latest event time held for an entity (microseconds), if any."""
        state = self._states.get(key)
        return None if state is None else state.latest

    def _prune(self, state: _KeyState) -> None:
        horizon = state.latest - self._longest - self.allowed_lateness_us
        cut = bisect.bisect_right(state.times, horizon)
        if cut:
            state.drop_before(cut)
