"""The exporter's state: sliding windows per model version, and the join of labels to predictions.

Pure: records in, arrays out; no Kafka, no Prometheus. Every structure is
bounded: the windows are numpy rings of the most recent rows, predictions
waiting for their label and labels waiting for their prediction are capped
(the oldest go first, and are counted), and only the newest ``max_versions``
versions keep windows.

A label joins the logged prediction of the same transaction
(``LabelV1.transaction_event_id`` = ``PredictionV1.transaction_event_id``); a
label that comes first waits for its prediction. Labels are mostly fraud reports
(chargebacks): as the problem card says, a transaction with no fraud label once
its label horizon has passed is legitimate. So a prediction still waiting when
the event-time watermark (the newest event time seen on either stream) passes
its time plus the horizon is resolved as legitimate. Replaying a record changes
nothing: predictions are kept by transaction, and a transaction is resolved once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import numpy as np

from berg.contracts import LabelV1
from berg.contracts.predictions import PredictionV1

__all__ = ["AMOUNT_FEATURE", "JoinOutcome", "MonitoringState", "Ring", "VersionWindows"]

AMOUNT_FEATURE = "amount"
"""The prediction log's feature holding the transaction amount (the business metrics' money)."""


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
    """One model version's windows: served predictions (drift) and labelled ones (quality)."""

    version: str
    features: tuple[str, ...]
    """Feature names in the drift ring's column order (the first prediction's, sorted)."""
    drift: Ring
    """Columns: the features, then the score."""
    quality: Ring
    """Columns: label (0/1), score, amount."""
    threshold: float
    predictions: int = 0
    labelled: int = 0
    """Predictions joined to an explicit label (resolutions by the horizon are not counted)."""
    last_seen: int = 0
    """Sequence number of its latest prediction: the newest versions keep their windows."""

    @property
    def label_coverage(self) -> float:
        """Share of this version's predictions (since the exporter started reading) that got their label."""
        return self.labelled / self.predictions if self.predictions else float("nan")


@dataclass(frozen=True)
class _Pending:
    version: str
    score: float
    amount: float
    served_at: float
    """Prediction event time, POSIX seconds."""


@dataclass(frozen=True)
class JoinOutcome:
    """What one label did: joined a prediction (with the label's delay), or waits for it."""

    joined: bool
    delay_s: float | None = None
    """Label time minus the prediction's time, for a joined label."""


@dataclass
class MonitoringState:
    """All windows of one model, the pending join, and the resolved transaction times (data-volume count)."""

    drift_window: int
    quality_window: int
    pending_capacity: int
    label_history: int
    max_versions: int
    label_horizon_s: float
    """The problem card's label horizon: unlabelled this long after the prediction means legitimate."""
    versions: dict[str, VersionWindows] = field(default_factory=dict)
    evicted_predictions: int = 0
    """Predictions dropped unlabelled to make room (their labels will count as unmatched)."""
    evicted_labels: int = 0
    """Labels dropped while waiting for a prediction that never came."""
    expired: int = 0
    """Predictions resolved as legitimate: no fraud label within the horizon."""
    _pending: OrderedDict[UUID, _Pending] = field(default_factory=OrderedDict)
    _orphans: OrderedDict[UUID, LabelV1] = field(default_factory=OrderedDict)
    _labelled: set[UUID] = field(default_factory=set)
    _label_times: Ring | None = None
    _sequence: int = 0
    _watermark: float = float("-inf")

    def add_prediction(self, prediction: PredictionV1) -> JoinOutcome | None:
        """Add a served prediction to its version's drift window; join a label that came first (its outcome)."""
        key = prediction.transaction_event_id
        if key in self._pending or key in self._labelled:
            return None  # a replayed record
        self._advance(prediction.event_time.timestamp())
        windows = self._windows_for(prediction)
        features = prediction.features
        windows.drift.append([*(features.get(name, np.nan) for name in windows.features), prediction.score])
        windows.predictions += 1
        windows.threshold = prediction.threshold
        self._sequence += 1
        windows.last_seen = self._sequence
        pending = _Pending(
            prediction.model_version,
            prediction.score,
            float(features.get(AMOUNT_FEATURE, np.nan)),
            prediction.event_time.timestamp(),
        )
        orphan = self._orphans.pop(key, None)
        if orphan is not None:
            return self._join(key, pending, orphan)
        self._pending[key] = pending
        if len(self._pending) > self.pending_capacity:
            self._pending.popitem(last=False)
            self.evicted_predictions += 1
        self._expire()
        return None

    def add_label(self, label: LabelV1) -> JoinOutcome:
        """Record a label's time and join it to its prediction, or keep it until the prediction comes."""
        key = label.transaction_event_id
        if key in self._labelled or key in self._orphans:
            return JoinOutcome(joined=False)  # a replayed record
        self._advance(label.event_time.timestamp())
        self._expire()
        pending = self._pending.pop(key, None)
        if pending is None:
            self._orphans[key] = label
            if len(self._orphans) > self.pending_capacity:
                self._orphans.popitem(last=False)
                self.evicted_labels += 1
            return JoinOutcome(joined=False)
        return self._join(key, pending, label)

    def _join(self, key: UUID, pending: _Pending, label: LabelV1) -> JoinOutcome:
        self._resolve(key, pending, fraud=label.is_fraud)
        windows = self.versions.get(pending.version)
        if windows is not None:
            windows.labelled += 1
        return JoinOutcome(joined=True, delay_s=label.event_time.timestamp() - pending.served_at)

    def _resolve(self, key: UUID, pending: _Pending, *, fraud: bool) -> None:
        self._labelled.add(key)
        self._label_time_ring().append([pending.served_at])
        windows = self.versions.get(pending.version)
        if windows is not None:
            amount = pending.amount if np.isfinite(pending.amount) else 0.0
            windows.quality.append([float(fraud), pending.score, amount])

    def _advance(self, event_time: float) -> None:
        self._watermark = max(self._watermark, event_time)

    def _expire(self) -> None:
        """Resolve as legitimate the oldest waiting predictions whose label horizon the watermark has passed.

        Predictions wait in arrival order, which is event order up to small disorder; the scan stops at the
        first one still inside its horizon, so each call costs O(resolved + 1).
        """
        cutoff = self._watermark - self.label_horizon_s
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if pending.served_at > cutoff:
                return
            del self._pending[key]
            self._resolve(key, pending, fraud=False)
            self.expired += 1

    def _label_time_ring(self) -> Ring:
        if self._label_times is None:
            self._label_times = Ring(self.label_history, 1)
        return self._label_times

    def labels_after(self, posix_s: float) -> int:
        """Resolved transactions (fraud label, or horizon passed) predicted after ``posix_s``: labelled rows the
        model trained up to ``posix_s`` has not seen (the data-volume trigger's count)."""
        if self._label_times is None:
            return 0
        return int(np.count_nonzero(self._label_times.rows()[:, 0] > posix_s))

    def _windows_for(self, prediction: PredictionV1) -> VersionWindows:
        windows = self.versions.get(prediction.model_version)
        if windows is None:
            features = tuple(sorted(prediction.features))
            windows = VersionWindows(
                prediction.model_version,
                features,
                Ring(self.drift_window, len(features) + 1),
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
        """(predictions waiting for a label, labels waiting for a prediction)."""
        return len(self._pending), len(self._orphans)
