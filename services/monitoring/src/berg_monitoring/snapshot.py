"""One computation of every statistic the exporter shows: the windows in, a frozen snapshot out.

Pure: the caller hands over the state, the references it loaded from the
registry and the problem card's costs; the scrape reads the last snapshot and
never computes anything itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from berg.problem.card import Costs
from berg_monitoring.shadow_comparison import ShadowComparison
from berg_monitoring.statistics import DriftResult, QualitySummary, ReferenceProfile, feature_drift, quality_summary
from berg_monitoring.windows import MonitoringState

__all__ = ["Reference", "Snapshot", "VersionSnapshot", "compute_snapshot"]


@dataclass(frozen=True)
class Reference:
    """What the registry says about a version: its training profile and its PR-AUC at evaluation."""

    profile: ReferenceProfile | None
    """None when the version has no usable profile (drift is then not measured, and the log says why)."""
    pr_auc: float | None


@dataclass(frozen=True)
class VersionSnapshot:
    version: str
    predictions: int
    drift_rows: int
    """Predictions in the drift window (held: a sample once its cycles outgrow the capacity)."""
    drift_sufficient: bool
    """The drift window spans whole cycles and holds at least the minimum: its drift may be judged."""
    drift_span_s: float
    """Event time the drift window covers (whole cycles once sufficient)."""
    drift_sample_ratio: float
    """Probability with which each prediction of the window is held."""
    features: Mapping[str, DriftResult]
    """Empty unless the drift window is sufficient and the version has a reference."""
    watch_only: frozenset[str]
    """Features whose drift starts no retraining run (the reference profile says so)."""
    prediction: DriftResult | None
    quality: QualitySummary | None
    """None before the first matured transaction; ``quality.sufficient`` says whether it may be shown."""
    reference_pr_auc: float | None
    label_coverage: float


@dataclass(frozen=True)
class Snapshot:
    versions: tuple[VersionSnapshot, ...]
    new_labelled_rows: int | None
    """Labels since the production version's training window; None while no version is in production."""
    shadows: tuple[ShadowComparison, ...] = ()
    """Each (champion, shadow) pair's comparison on the same requests."""


@dataclass(frozen=True)
class SnapshotSettings:
    min_drift_rows: int
    min_labels: int
    min_positives: int


def compute_snapshot(
    state: MonitoringState,
    references: Mapping[str, Reference],
    costs: Costs,
    settings: SnapshotSettings,
    production_data_end: float | None,
    silenced: frozenset[str] = frozenset(),
    *,
    drift_ready: bool = True,
    shadows: tuple[ShadowComparison, ...] = (),
) -> Snapshot:
    """Every version's drift and quality, and the data-volume count.

    Args:
        references: by version; a version missing here has no drift gauges.
        production_data_end: POSIX seconds where the production version's training window ended.
        silenced: versions left out altogether (out of production for longer than the grace period).
        drift_ready: False while the reader is still catching up on the predictions topic after its start: its
            partitions are read at different paces, so a window then holds different hours of different
            partitions, and no drift is judged.
        shadows: the shadow comparisons (:func:`berg_monitoring.shadow_comparison.compare_shadows`), passed
            through.
    """
    versions = []
    for windows in state.versions.values():
        if windows.version in silenced:
            continue
        reference = references.get(windows.version)
        window = windows.drift.current()
        matrix = window.rows
        drift_rows = len(matrix)
        sufficient = drift_ready and window.sufficient and drift_rows >= settings.min_drift_rows
        features: Mapping[str, DriftResult] = {}
        prediction: DriftResult | None = None
        if sufficient and reference is not None and reference.profile is not None:
            known = [name for name in windows.features if name in reference.profile.features]
            columns = [windows.features.index(name) for name in known]
            features = feature_drift(reference.profile, matrix[:, columns], known)
            prediction = reference.profile.prediction.drift(matrix[:, -1])
        quality = None
        if len(windows.quality):
            labelled = windows.quality.rows()
            quality = quality_summary(
                labelled[:, 0].astype(np.int64),
                labelled[:, 1],
                labelled[:, 2],
                threshold=windows.threshold,
                costs=costs,
                min_labels=settings.min_labels,
                min_positives=settings.min_positives,
            )
        versions.append(
            VersionSnapshot(
                version=windows.version,
                predictions=windows.predictions,
                drift_rows=drift_rows,
                drift_sufficient=sufficient,
                drift_span_s=window.span_s,
                drift_sample_ratio=window.sample_ratio,
                features=features,
                watch_only=reference.profile.watch_only
                if reference is not None and reference.profile is not None
                else frozenset(),
                prediction=prediction,
                quality=quality,
                reference_pr_auc=reference.pr_auc if reference is not None else None,
                label_coverage=windows.label_coverage,
            )
        )
    new_rows = state.labels_after(production_data_end) if production_data_end is not None else None
    return Snapshot(tuple(versions), new_rows, shadows)


def finite(value: float | None) -> bool:
    """Whether a statistic is a number Prometheus should see (NaN and None are left out)."""
    return value is not None and math.isfinite(value)
