"""The shadow log's window: the champion's and a shadow's answers to the same requests, per pair of versions.

Pure: :class:`~berg.contracts.ShadowPredictionV1` records in, arrays out; no Kafka, no
Prometheus. A pair is (champion version, shadow version): one challenger shadowing one
champion. Each pair keeps its most recent ``capacity`` records (the oldest read go first,
as the quality ring overwrites its oldest rows), and only the ``max_pairs`` pairs that
had a record most recently keep a window, as only the newest versions keep theirs.

Labels are not kept here: a shadow record names its scored event, whose label the
champion's join settles (:meth:`berg_monitoring.windows.MonitoringState.resolution`).
One label machinery, so a shadow's PR-AUC is judged on the very outcomes its champion's
quality window is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

import numpy as np

from berg.contracts.shadow import ShadowPredictionV1

__all__ = ["PairWindow", "ShadowPair", "ShadowRows", "ShadowWindows"]

ShadowPair = tuple[str, str]
"""(champion version, shadow version)."""


@dataclass(frozen=True)
class ShadowRows:
    """A pair's window as arrays, one entry per shadowed request, oldest first."""

    scored_event_ids: tuple[UUID, ...]
    champion_scores: np.ndarray
    shadow_scores: np.ndarray
    agree: np.ndarray
    """Bool: the two decisions were the same."""


class PairWindow:
    """The most recent ``capacity`` shadowed requests of one pair, by scored event (a replay changes nothing).

    A ring of numpy columns beside the requests' ids: reading the window copies arrays
    rather than walking ``capacity`` Python objects (an ``OrderedDict`` of records, read
    every recompute, hashed every id again).
    """

    def __init__(self, capacity: int) -> None:
        self.last_seen = 0
        """Sequence number of its latest record: the pairs seen most recently keep their windows."""
        self._scores = np.zeros((capacity, 2))
        """Columns: the champion's score, the shadow's."""
        self._agree = np.zeros(capacity, np.bool_)
        self._ids: list[UUID | None] = [None] * capacity
        self._slots: dict[UUID, int] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._slots)

    def add(self, record: ShadowPredictionV1) -> bool:
        """Keep a record, in place of the oldest once full; False for a request already held (a replay)."""
        key = record.scored_event_id
        if key in self._slots:
            return False
        slot = self._next
        overwritten = self._ids[slot]
        if overwritten is not None:
            del self._slots[overwritten]
        self._ids[slot] = key
        self._slots[key] = slot
        self._scores[slot] = (record.champion_score, record.score)
        self._agree[slot] = record.decision == record.champion_decision
        self._next = (slot + 1) % len(self._ids)
        return True

    def rows(self) -> ShadowRows:
        size, capacity = len(self._slots), len(self._ids)
        order = np.arange(size) if size < capacity else np.roll(np.arange(capacity), -self._next)
        ids = self._ids[:size] if size < capacity else self._ids[self._next :] + self._ids[: self._next]
        return ShadowRows(
            tuple(key for key in ids if key is not None),
            self._scores[order, 0],
            self._scores[order, 1],
            self._agree[order],
        )


@dataclass
class ShadowWindows:
    """Every pair's window of one model (records of other models are the caller's to skip)."""

    capacity: int
    """Shadowed requests a pair's window holds at most."""
    max_pairs: int
    pairs: dict[ShadowPair, PairWindow] = field(default_factory=dict)
    _sequence: int = 0

    def add(self, record: ShadowPredictionV1) -> bool:
        """Add a record to its pair's window; False when it was a replay."""
        pair = (record.champion_version, record.shadow_version)
        window = self.pairs.get(pair)
        if window is None:
            window = self.pairs[pair] = PairWindow(self.capacity)
            if len(self.pairs) > self.max_pairs:
                stalest = min((p for p in self.pairs if p != pair), key=lambda p: self.pairs[p].last_seen)
                del self.pairs[stalest]
        self._sequence += 1
        window.last_seen = self._sequence
        return window.add(record)
