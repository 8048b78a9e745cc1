"""The exporter's state: sliding windows per model version, and the join of labels to predictions.

Pure: records in, arrays out; no Kafka, no Prometheus. Every structure is
bounded: the drift windows hold the newest whole cycles of event time within a
capacity (:mod:`berg_monitoring.drift_window`), the quality windows are numpy
rings of the most recent matured rows, predictions
waiting for their label and labels waiting for their prediction are capped
(the oldest go first, and are counted), matured events are remembered up
to ``label_history``, and only the newest ``max_versions`` versions keep windows.

Predictions are read as today's version of the log (:class:`~berg.contracts.PredictionV3`):
the exporter decodes older records with the use case's :class:`~berg.contracts.PredictionLogReader`,
so records written before an upgrade still count.

**One clock: the scored event's event time.** A prediction stands at its scored
event's event time (``PredictionV3.scored_event_time``; an older record that only
said when it was served reads as scored then: the same in real time, not in a
replay), a label at its own event time. So:

- a label's delay is its event time minus its scored event's;
- the watermark is how far both streams are complete in event time (as the
  training pipeline's label-complete window), never wall time: the oldest of the
  newest event times seen on each partition of either stream. Each partition is
  written in event order, but a reader reads partitions at its own pace (days of
  event time apart when it catches up on a replay), so the slowest one counts; a
  partition that still has records from before the start unread counts from
  before its first record. A partition that falls idle holds maturing back:
  quality then stays insufficient, never wrong;
- a scored event (a transaction, in the reference case) *matures* once the watermark
  has passed its time plus the problem card's label horizon, in whatever order its
  prediction arrived. Its label is then final, as the card defines it and as training
  saw it: positive when a positive label came within the horizon, negative otherwise.
  Only then does it enter its version's quality window.

The quality window therefore holds settled outcomes only: until a horizon of event
time has been seen it is empty, and quality is reported as insufficient rather than
judged on the labels that come first (mostly positives). A label that comes after its
horizon is ``late``: its delay is measured, its event stays negative.

A label, read as a :class:`Verdict` through the use case's label join (whatever its
contract calls the fields), joins the logged prediction of the event it judges
(``Verdict.subject_id`` = the prediction's ``scored_event_id``); a label that
comes first waits for its prediction. Replaying a record changes nothing:
predictions are kept by scored event, an event counts one label (a positive
label still outranks a negative one) and matures once.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

import numpy as np
from pydantic import BaseModel

from berg.contracts.predictions import PredictionV3
from berg.usecase import LabelJoin
from berg_monitoring.drift_window import DriftSpec, DriftWindow, drift_window

__all__ = [
    "LabelOutcome",
    "MonitoringState",
    "Ring",
    "Stream",
    "Verdict",
    "VersionWindows",
]

Stream = Literal["scored", "labels"]
"""The two streams whose event time the watermark follows: predictions (at their scored events' times) and labels."""

_EVENT_TIME = "event_time"
"""Every contract's event time field (:class:`berg.usecase.Stream` checks that it has one)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A label as the join reads it, whatever the use case calls its fields."""

    subject_id: UUID
    """The ``event_id`` of the event it judges."""
    positive: bool
    event_time: datetime
    """When the verdict became known."""

    @classmethod
    def of(cls, label: BaseModel, join: LabelJoin) -> Verdict:
        """The verdict of a label decoded with its use case's label contract."""
        return cls(getattr(label, join.subject_id), bool(getattr(label, join.target)), getattr(label, _EVENT_TIME))


class Ring:
    """The most recent ``capacity`` rows of ``width`` float64 columns, oldest overwritten first."""

    def __init__(self, capacity: int, width: int) -> None:
        self._data = np.full((capacity, width), np.nan)
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, row: Sequence[float] | np.ndarray) -> None:
        self._data[self._next] = row
        self._next = (self._next + 1) % len(self._data)
        self._size = min(self._size + 1, len(self._data))

    def rows(self) -> np.ndarray:
        """A copy of the rows held, oldest first (order does not matter to the statistics, but tests read it)."""
        if self._size < len(self._data):
            return self._data[: self._size].copy()
        return np.concatenate((self._data[self._next :], self._data[: self._next]))


@dataclass
class VersionWindows:
    """One model version's windows: served predictions (drift) and matured ones (quality)."""

    version: str
    features: tuple[str, ...]
    """Feature names in the drift ring's column order (the first prediction's, sorted)."""
    drift: DriftWindow
    """Columns: the features, then the score; over the newest whole cycles of the scored events' event time."""
    quality: Ring
    """Columns: label (0/1), score, amount; one row per matured scored event."""
    threshold: float
    predictions: int = 0
    labelled: int = 0
    """Predictions joined to a label within their horizon (maturing unlabelled is not counted)."""
    last_seen: int = 0
    """Sequence number of its latest prediction: the newest versions keep their windows."""

    @property
    def label_coverage(self) -> float:
        """Share of this version's predictions (since the exporter started reading) that got their label."""
        return self.labelled / self.predictions if self.predictions else float("nan")


@dataclass(slots=True)
class _Pending:
    """A prediction whose scored event has not matured yet."""

    version: str
    score: float
    amount: float
    time: float
    """The scored event's event time, POSIX seconds."""
    label_seen: bool = False
    """A label of this scored event was counted (a repeat is not counted again)."""
    labelled: bool = False
    """A label came within the horizon."""
    positive: bool = False
    """A positive label came within the horizon."""


@dataclass(frozen=True, slots=True)
class LabelOutcome:
    """What one label did, once its prediction is known; ``delay_s`` is its event time minus the scored event's.

    ``joined``: it met its prediction within the label horizon. ``late``: it came after the horizon (the
    event stays negative, as the card says). ``waiting``: no prediction yet (it waits for it).
    ``repeat``: the scored event already had its label counted (a replay, or a second label).
    """

    kind: Literal["joined", "late", "waiting", "repeat"]
    delay_s: float | None = None


@dataclass
class MonitoringState:
    """All windows of one model, the pending join, and the matured event times (data-volume count)."""

    drift: DriftSpec
    quality_window: int
    pending_capacity: int
    label_history: int
    max_versions: int
    label_horizon_s: float
    """The problem card's label horizon: no positive label this long after the scored event means negative."""
    amount_feature: str | None = None
    """The prediction log's feature holding the money business metrics price decisions by (the label join's
    ``amount``); None: amounts are 0."""
    versions: dict[str, VersionWindows] = field(default_factory=dict)
    evicted_predictions: int = 0
    """Predictions dropped before maturing to make room, earliest scored event first (their labels will wait
    unmatched)."""
    evicted_labels: int = 0
    """Labels dropped while waiting for a prediction that never came."""
    expired: int = 0
    """Transactions matured with no label within the horizon: legitimate by the card's definition."""
    _pending: dict[UUID, _Pending] = field(default_factory=dict)
    _due: list[tuple[float, int, UUID]] = field(default_factory=list)
    """The pending scored events as a heap of (event time, arrival, id): the next to mature on top."""
    _orphans: OrderedDict[UUID, Verdict] = field(default_factory=OrderedDict)
    _matured: OrderedDict[UUID, tuple[float, bool, bool]] = field(default_factory=OrderedDict)
    """Matured scored events: (event time, whether a label was counted, the final label), for replays, late
    labels and the shadow comparison's labels (:meth:`resolution`)."""
    _label_times: Ring | None = None
    _sequence: int = 0
    _newest: dict[tuple[Stream, int], float] = field(default_factory=dict)
    """The newest event time seen on each (stream, partition)."""
    _awaited: frozenset[tuple[Stream, int]] = frozenset()
    """Partitions with records from before the start not read yet: -inf until their first record is seen."""

    @property
    def watermark(self) -> float:
        """Event time (POSIX seconds) up to which both streams are complete; -inf until both have a record."""
        streams = {stream for stream, _ in self._newest}
        if len(streams) < 2 or any(key not in self._newest for key in self._awaited):
            return float("-inf")
        return min(self._newest.values())

    def await_partitions(self, partitions: Collection[tuple[Stream, int]]) -> None:
        """Partitions that still hold records from before the start, unread; the watermark waits for them."""
        self._awaited = frozenset(partitions)
        self._mature()

    def advance(self, stream: Stream, partition: int, time: float) -> None:
        """Note an event time read on a partition (a record this state keeps nothing else of: another model's)."""
        self._advance(stream, partition, time)
        self._mature()

    def _advance(self, stream: Stream, partition: int, time: float) -> None:
        key = (stream, partition)
        self._newest[key] = max(self._newest.get(key, float("-inf")), time)

    def add_prediction(self, prediction: PredictionV3, partition: int = 0) -> LabelOutcome | None:
        """Add a served prediction to its version's drift window; a label that came first joins it (its outcome).

        Args:
            partition: the partition it was read from (the watermark follows the slowest one).
        """
        key = prediction.scored_event_id
        if key in self._pending or key in self._matured:
            return None  # a replayed record
        time = prediction.scored_event_time.timestamp()
        self._advance("scored", partition, time)
        windows = self._windows_for(prediction)
        features = prediction.features
        windows.drift.add(time, [*(features.get(name, np.nan) for name in windows.features), prediction.score])
        windows.predictions += 1
        windows.threshold = prediction.threshold
        self._sequence += 1
        windows.last_seen = self._sequence
        amount = features.get(self.amount_feature, np.nan) if self.amount_feature else np.nan
        pending = _Pending(prediction.model_version, prediction.score, float(amount), time)
        self._pending[key] = pending
        heapq.heappush(self._due, (time, self._sequence, key))
        orphan = self._orphans.pop(key, None)
        outcome = self._apply(pending, orphan) if orphan is not None else None
        if len(self._pending) > self.pending_capacity:
            _, _, dropped = heapq.heappop(self._due)
            del self._pending[dropped]
            self.evicted_predictions += 1
        self._mature()
        return outcome

    def add_label(self, label: Verdict, partition: int = 0) -> LabelOutcome:
        """Join a label to its prediction, or keep it until the prediction comes; then mature what is due.

        Args:
            partition: the partition it was read from (the watermark follows the slowest one).
        """
        key = label.subject_id
        self._advance("labels", partition, label.event_time.timestamp())
        pending = self._pending.get(key)
        if pending is not None:
            outcome = self._apply(pending, label)
        elif key in self._matured:
            outcome = self._apply_after_maturity(key, label)
        else:
            outcome = self._wait(key, label)
        self._mature()
        return outcome

    def _apply(self, pending: _Pending, label: Verdict) -> LabelOutcome:
        delay = label.event_time.timestamp() - pending.time
        within = delay <= self.label_horizon_s
        pending.positive = pending.positive or (within and label.positive)
        if pending.label_seen:
            return LabelOutcome("repeat", delay)
        pending.label_seen = True
        if not within:
            return LabelOutcome("late", delay)
        pending.labelled = True
        windows = self.versions.get(pending.version)
        if windows is not None:
            windows.labelled += 1
        return LabelOutcome("joined", delay)

    def _apply_after_maturity(self, key: UUID, label: Verdict) -> LabelOutcome:
        time, label_seen, positive = self._matured[key]
        delay = label.event_time.timestamp() - time
        if label_seen:
            return LabelOutcome("repeat", delay)
        self._matured[key] = (time, True, positive)
        # Maturing needs the watermark past the horizon, so the label came after it: the outcome stands.
        return LabelOutcome("late", delay)

    def _wait(self, key: UUID, label: Verdict) -> LabelOutcome:
        waiting = self._orphans.get(key)
        if waiting is not None:
            if label.positive and not waiting.positive:
                self._orphans[key] = label  # a positive label outranks a negative one
            return LabelOutcome("repeat")
        self._orphans[key] = label
        if len(self._orphans) > self.pending_capacity:
            self._orphans.popitem(last=False)
            self.evicted_labels += 1
        return LabelOutcome("waiting")

    def _mature(self) -> None:
        """Settle every waiting prediction whose label horizon the watermark has passed, earliest first."""
        cutoff = self.watermark - self.label_horizon_s
        while self._due and self._due[0][0] <= cutoff:
            _, _, key = heapq.heappop(self._due)
            pending = self._pending.pop(key)
            self._matured[key] = (pending.time, pending.label_seen, pending.positive)
            if len(self._matured) > self.label_history:
                self._matured.popitem(last=False)
            if not pending.labelled:
                self.expired += 1
            self._label_time_ring().append([pending.time])
            windows = self.versions.get(pending.version)
            if windows is not None:
                amount = pending.amount if np.isfinite(pending.amount) else 0.0
                windows.quality.append([float(pending.positive), pending.score, amount])

    def _label_time_ring(self) -> Ring:
        if self._label_times is None:
            self._label_times = Ring(self.label_history, 1)
        return self._label_times

    def resolution(self, scored_event_id: UUID) -> bool | None:
        """The final label of a scored event, as its version's quality window took it: True positive, False
        negative (no positive label within the horizon); None while it has not matured, or when no prediction of
        it was read or it was forgotten (past ``label_history``)."""
        matured = self._matured.get(scored_event_id)
        return None if matured is None else matured[2]

    def labels_after(self, posix_s: float) -> int:
        """Matured scored events (settled labels) of event time after ``posix_s``: labelled rows a model trained
        up to ``posix_s`` has not seen (the data-volume trigger's count)."""
        if self._label_times is None:
            return 0
        return int(np.count_nonzero(self._label_times.rows()[:, 0] > posix_s))

    def _windows_for(self, prediction: PredictionV3) -> VersionWindows:
        windows = self.versions.get(prediction.model_version)
        if windows is None:
            features = tuple(sorted(prediction.features))
            windows = VersionWindows(
                prediction.model_version,
                features,
                drift_window(self.drift, len(features) + 1, prediction.model_version),
                Ring(self.quality_window, 3),
                prediction.threshold,
            )
            self.versions[prediction.model_version] = windows
            if len(self.versions) > self.max_versions:
                others = (w for w in self.versions.values() if w is not windows)
                stalest = min(others, key=lambda w: w.last_seen)
                del self.versions[stalest.version]
        return windows

    @property
    def waiting(self) -> tuple[int, int]:
        """(predictions not matured yet, labels waiting for a prediction)."""
        return len(self._pending), len(self._orphans)
