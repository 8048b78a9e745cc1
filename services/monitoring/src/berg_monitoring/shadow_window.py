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

from collections import OrderedDict
from dataclasses import dataclass, field
from uuid import UUID

import numpy as np

from berg.contracts.shadow import ShadowPredictionV1

__all__ = ["PairWindow", "ShadowPair", "ShadowRows", "ShadowWindows"]

ShadowPair = tuple[str, str]
"""(champion version, shadow version)."""


@dataclass(frozen=True, slots=True)
class _Answer:
    champion_score: float
    shadow_score: float
    agree: bool
    """The shadow's decision equals the champion's."""


@dataclass(frozen=True)
class ShadowRows:
    """A pair's window as arrays, one entry per shadowed request, oldest first."""

    scored_event_ids: tuple[UUID, ...]
    champion_scores: np.ndarray
    shadow_scores: np.ndarray
    agree: np.ndarray
    """Bool: the two decisions were the same."""


@dataclass
class PairWindow:
    """The most recent ``capacity`` shadowed requests of one pair, by scored event (a replay changes nothing)."""

    capacity: int
    last_seen: int = 0
    """Sequence number of its latest record: the pairs seen most recently keep their windows."""
    _answers: OrderedDict[UUID, _Answer] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._answers)

    def add(self, record: ShadowPredictionV1) -> bool:
        """Keep a record; False for a request already held (a replayed record)."""
        key = record.scored_event_id
        if key in self._answers:
            return False
        self._answers[key] = _Answer(record.champion_score, record.score, record.decision == record.champion_decision)
        if len(self._answers) > self.capacity:
            self._answers.popitem(last=False)
        return True

    def rows(self) -> ShadowRows:
        answers = list(self._answers.values())
        return ShadowRows(
            tuple(self._answers),
            np.fromiter((a.champion_score for a in answers), np.float64, len(answers)),
            np.fromiter((a.shadow_score for a in answers), np.float64, len(answers)),
            np.fromiter((a.agree for a in answers), np.bool_, len(answers)),
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
