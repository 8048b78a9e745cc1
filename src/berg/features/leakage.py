"""Checks that a training frame leaks neither the label nor the future.

A model trained on leaked data looks excellent offline and fails in production, so
the training pipeline runs :func:`check_leakage` on every frame before fitting::

    layout = describe_features(store, "my_model_v1")  # berg.features.dataset
    check_leakage(frame, label_column="label", prediction_time_column="event_timestamp",
                  feature_columns=layout.features, as_of_columns=layout.as_of)

Two kinds of leak are looked for:

- **The label.** A feature computed from the label: the label itself, a function of
  it (``2 * label + noise``), or a value set on one class only. Caught by how well
  the feature alone separates the classes (rank-based ROC-AUC of its values, and of
  "equals v" for its most frequent values, nulls included) and by whether it is an
  exact function of the label. A legitimate feature rarely reaches an AUC of 0.99 on
  its own; the threshold is a parameter.
- **The future.** A feature built from events after the prediction time. Each
  feature view has an as-of column (the Unix-seconds event time of the data a row
  summarises); a row whose as-of time is later than its prediction time used the
  future. A view without an as-of column cannot be proven point-in-time correct and
  is reported too, unless allowed by name.

Pure pandas and numpy (no Feast), so the training pipeline and notebooks use it on
any frame.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "FindingKind",
    "LeakageError",
    "LeakageFinding",
    "LeakageReport",
    "check_leakage",
    "roc_auc",
]

FindingKind = Literal[
    "label_function", "label_separable", "label_indicator", "future_as_of", "unproven_view", "recompute_mismatch"
]
"""``recompute_mismatch``: :mod:`berg.features.recompute` could not reproduce a sampled training value."""

_SHOWN = 5  # features named in one message


@dataclass(frozen=True)
class LeakageFinding:
    """One leak (or one thing that cannot be proven leak-free)."""

    kind: FindingKind
    subject: str
    """The feature column (label findings) or the view (as-of findings)."""
    message: str
    """A sentence for a person: what is wrong, how much, and what to do."""
    rows: int = 0
    """Rows involved (future_as_of: rows whose as-of time is after the prediction time)."""
    score: float = float("nan")
    """The ROC-AUC (label findings), or the largest lead in seconds (future_as_of)."""


@dataclass(frozen=True)
class LeakageReport:
    """What :func:`check_leakage` looked at and found."""

    rows: int
    features_checked: tuple[str, ...]
    views_checked: tuple[str, ...]
    findings: tuple[LeakageFinding, ...] = ()
    notes: tuple[str, ...] = field(default=())
    """Checks that could not run (e.g. one label class only), for the record."""

    @property
    def ok(self) -> bool:
        """No findings."""
        return not self.findings

    def summary(self) -> str:
        """A multi-line account: one line per finding, or that the frame passed."""
        head = (
            f"leakage check over {self.rows} rows, {len(self.features_checked)} features, "
            f"{len(self.views_checked)} views: "
        )
        if self.ok:
            lines = [head + "no leak found"]
        else:
            lines = [head + f"{len(self.findings)} finding(s)"]
            lines += [f"- [{finding.kind}] {finding.message}" for finding in self.findings]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


class LeakageError(ValueError):
    """A training frame leaks the label or the future; ``report`` says where."""

    def __init__(self, report: LeakageReport) -> None:
        super().__init__(report.summary())
        self.report = report


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC of ``scores`` for binary ``labels`` (1 positive), ties counted half; NaN with one class.

    Rank-based (Mann-Whitney U), so it needs no sklearn and handles constant scores (0.5).
    """
    positives = labels.astype(bool)
    n_pos = int(positives.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _as_unix_seconds(values: pd.Series) -> pd.Series:
    """Unix seconds as float64 from a datetime column (tz-naive read as UTC) or a numeric one."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = pd.to_datetime(values, utc=True)
        seconds = stamps.astype("datetime64[ns, UTC]").astype("int64") / 1e9
        return seconds.where(stamps.notna())
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.3g} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"


def _binary_label(label: pd.Series) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(rows with a label, 0/1 labels there, why the label checks cannot run or None)."""
    known = label.notna().to_numpy()
    classes = pd.unique(label[known])
    if len(classes) != 2:
        return known, np.zeros(int(known.sum()), dtype=np.int8), f"label has {len(classes)} class(es), not 2"
    positive = max(classes)
    return known, (label[known] == positive).to_numpy().astype(np.int8), None


def _extreme(auc: float, threshold: float) -> bool:
    return not np.isnan(auc) and (auc >= threshold or auc <= 1 - threshold)


def _label_finding(
    column: str,
    view: str,
    values: pd.Series,
    labels: np.ndarray,
    *,
    threshold: float,
    min_class_rows: int,
    indicator_values: int,
) -> LeakageFinding | None:
    """The strongest label leak of one feature, or None."""
    where = f"feature {column!r} (view {view!r})"
    advice = "drop it, or rebuild it from data known before the prediction time"
    present = values.notna().to_numpy()
    pos_present = int(labels[present].sum())
    neg_present = int(present.sum()) - pos_present

    if min(pos_present, neg_present) >= min_class_rows:
        by_class = [values[present & (labels == cls)] for cls in (0, 1)]
        constants = [group.nunique() == 1 for group in by_class]
        if all(constants) and by_class[0].iloc[0] != by_class[1].iloc[0]:
            return LeakageFinding(
                kind="label_function",
                subject=column,
                message=(
                    f"{where} is a function of the label: {by_class[1].iloc[0]!r} on every positive row and "
                    f"{by_class[0].iloc[0]!r} on every negative one ({int(present.sum())} rows); {advice}"
                ),
                rows=int(present.sum()),
                score=1.0,
            )
        numeric = values[present]
        if pd.api.types.is_bool_dtype(numeric.dtype) or pd.api.types.is_numeric_dtype(numeric.dtype):
            auc = roc_auc(numeric.astype("float64").to_numpy(), labels[present])
            if _extreme(auc, threshold):
                return LeakageFinding(
                    kind="label_separable",
                    subject=column,
                    message=(
                        f"{where} alone separates the label: ROC-AUC {auc:.4f} over {int(present.sum())} rows "
                        f"with a value (threshold {threshold}); a feature that good is almost always derived "
                        f"from the label; {advice}"
                    ),
                    rows=int(present.sum()),
                    score=auc,
                )

    if min(int(labels.sum()), len(labels) - int(labels.sum())) < min_class_rows:
        return None
    # "Equals v" for the most frequent values, nulls as a value: a value set on one class only.
    counts = values.value_counts(dropna=False).head(indicator_values)
    for value in counts.index:
        indicator = values.isna().to_numpy() if pd.isna(value) else (values == value).fillna(False).to_numpy()
        auc = roc_auc(indicator.astype(np.float64), labels)
        if _extreme(auc, threshold):
            shown = "null" if pd.isna(value) else repr(value)
            pos_share = indicator[labels == 1].mean()
            neg_share = indicator[labels == 0].mean()
            return LeakageFinding(
                kind="label_indicator",
                subject=column,
                message=(
                    f"{where} is {shown} on {pos_share:.1%} of positive rows and {neg_share:.1%} of negative "
                    f"rows: that value alone gives the label away (ROC-AUC {auc:.4f}); {advice}"
                ),
                rows=int(indicator.sum()),
                score=auc,
            )
    return None


def _future_findings(
    frame: pd.DataFrame,
    view: str,
    as_of_columns: Sequence[str],
    prediction: np.ndarray,
    features: Sequence[str],
    *,
    tolerance_seconds: float,
    as_of_must_precede: bool,
) -> list[LeakageFinding]:
    findings: list[LeakageFinding] = []
    named = ", ".join(repr(name) for name in features[:_SHOWN]) + (" ..." if len(features) > _SHOWN else "")
    for column in as_of_columns:
        if column not in frame.columns:
            findings.append(
                LeakageFinding(
                    kind="unproven_view",
                    subject=view,
                    message=(
                        f"view {view!r}: its as-of column {column!r} is not in the frame, so its features "
                        f"({named}) cannot be checked against the prediction time; build the frame with "
                        "with_as_of=True"
                    ),
                )
            )
            continue
        ahead = _as_unix_seconds(frame[column]).to_numpy() - prediction
        limit = -tolerance_seconds if as_of_must_precede else tolerance_seconds
        with np.errstate(invalid="ignore"):
            late = ahead > limit  # NaN (no row, or no prediction time) compares False
        if not late.any():
            continue
        leads = pd.Series(ahead[late]).clip(lower=0)
        relation = "at or after" if as_of_must_precede else "after"
        findings.append(
            LeakageFinding(
                kind="future_as_of",
                subject=view,
                message=(
                    f"view {view!r}: {int(late.sum())} of {len(frame)} rows use data from {relation} the "
                    f"prediction time (as-of column {column!r} up to {_duration(float(leads.max()))} ahead, "
                    f"median {_duration(float(leads.median()))}); features affected: {named}. The view's rows "
                    "are stamped earlier than the data they summarise, or the frame was not joined point-in-time "
                    "(build it with berg.features.dataset.build_training_frame)"
                ),
                rows=int(late.sum()),
                score=float(leads.max()),
            )
        )
    return findings


def check_leakage(
    frame: pd.DataFrame,
    *,
    label_column: str,
    prediction_time_column: str,
    feature_columns: Mapping[str, str],
    as_of_columns: Mapping[str, str | Sequence[str]],
    separability_threshold: float = 0.99,
    min_class_rows: int = 10,
    indicator_values: int = 5,
    tolerance_seconds: float = 1e-6,
    as_of_must_precede: bool = False,
    allow_unproven_views: Collection[str] = (),
    raise_on_findings: bool = True,
) -> LeakageReport:
    """Look for label-derived features and features computed from after the prediction time.

    Args:
        frame: The training frame: label, prediction time, features, as-of columns.
        label_column: The binary label (two distinct values; the larger is positive).
            Rows without a label are left out of the label checks.
        prediction_time_column: When each prediction is made: datetimes (tz-naive read
            as UTC) or Unix seconds.
        feature_columns: Feature column -> the view it comes from
            (:func:`berg.features.dataset.describe_features` gives it).
        as_of_columns: View -> its as-of column(s): Unix seconds (or datetimes) of the
            data a row summarises. An on-demand view lists its source views' columns.
        separability_threshold: A feature whose ROC-AUC alone is at least this, or at
            most one minus this, is reported.
        min_class_rows: Fewer rows than this in a label class (among rows where the
            feature has a value) and the separability checks are skipped for it.
        indicator_values: How many of a feature's most frequent values (null included)
            are tested as "feature equals v" indicators.
        tolerance_seconds: As-of times up to this far after the prediction time pass
            (rounding of float Unix seconds).
        as_of_must_precede: Also report as-of times equal to the prediction time: for
            frames built ``strictly_before``, where a row must not include the predicted event.
        allow_unproven_views: Views accepted without an as-of column.
        raise_on_findings: Raise :class:`LeakageError` when anything is found (default);
            otherwise return the report either way.

    Raises:
        LeakageError: when ``raise_on_findings`` and a finding was made.
        KeyError: when the label, time or a feature column is not in the frame.
    """
    absent = [column for column in (label_column, prediction_time_column, *feature_columns) if column not in frame]
    if absent:
        raise KeyError(f"columns not in the frame: {absent}")
    findings: list[LeakageFinding] = []
    notes: list[str] = []

    known, labels, why_not = _binary_label(frame[label_column])
    if why_not is not None:
        notes.append(f"label checks skipped: {why_not}")
    else:
        for column, view in feature_columns.items():
            finding = _label_finding(
                column,
                view,
                frame.loc[known, column].reset_index(drop=True),
                labels,
                threshold=separability_threshold,
                min_class_rows=min_class_rows,
                indicator_values=indicator_values,
            )
            if finding is not None:
                findings.append(finding)

    prediction = _as_unix_seconds(frame[prediction_time_column]).to_numpy()
    features_by_view: dict[str, list[str]] = {}
    for column, view in feature_columns.items():
        features_by_view.setdefault(view, []).append(column)
    for view, features in features_by_view.items():
        columns = as_of_columns.get(view)
        if columns is None:
            if view not in allow_unproven_views:
                named = ", ".join(repr(name) for name in features[:_SHOWN]) + (" ..." if len(features) > _SHOWN else "")
                findings.append(
                    LeakageFinding(
                        kind="unproven_view",
                        subject=view,
                        message=(
                            f"view {view!r} has no as-of column, so nothing proves its {len(features)} feature(s) "
                            f"({named}) were computed from data before the prediction time; give the view an "
                            f"as-of feature named in its 'as_of' tag, or pass allow_unproven_views=[{view!r}]"
                        ),
                    )
                )
            continue
        findings += _future_findings(
            frame,
            view,
            [columns] if isinstance(columns, str) else list(columns),
            prediction,
            features,
            tolerance_seconds=tolerance_seconds,
            as_of_must_precede=as_of_must_precede,
        )

    report = LeakageReport(
        rows=len(frame),
        features_checked=tuple(feature_columns),
        views_checked=tuple(features_by_view),
        findings=tuple(findings),
        notes=tuple(notes),
    )
    if raise_on_findings and not report.ok:
        raise LeakageError(report)
    return report
