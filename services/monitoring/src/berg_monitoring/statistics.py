"""Drift and delayed-label quality statistics of the monitoring exporter: pure numpy, no I/O.

Drift compares a window of live values with the reference profile a model version
stores (``berg_pipelines.runtime.profile``): per variable, inner quantile bin
``edges``, the ``shares`` of all training rows per bin, the ``missing_share`` and a
sorted ``sample``. Two statistics per variable:

- PSI over the profile's bins plus a missing bin (:func:`psi`);
- the two-sample Kolmogorov-Smirnov D against the profile's sample (:func:`ks_statistic`).

Both follow the profile in what counts as missing: NaN and +-inf (the profile keeps
only finite values as present). A :class:`DistributionReference` is built once per
variable and model version and computes both from one sort of the window
(:meth:`DistributionReference.drift`, :func:`feature_drift` for a window matrix).

Quality reuses the problem card's metrics (``berg.problem.metrics``), so a PR-AUC or
an expected cost means the same on a dashboard as in the training report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from berg.problem.card import Costs
from berg.problem.metrics import average_precision, calibration_error, outcomes_at

__all__ = [
    "PSI_EMPTY_BIN_SHARE",
    "REFERENCE_BINS",
    "BinnedReference",
    "DistributionReference",
    "DriftResult",
    "ProfileError",
    "QualitySummary",
    "ReferenceProfile",
    "ReferenceSample",
    "binned_reference",
    "calibration_error",
    "enough_labels",
    "feature_drift",
    "ks_statistic",
    "psi",
    "quality_summary",
]

FloatArray = NDArray[np.float64]

PSI_EMPTY_BIN_SHARE = 1e-4
"""Floor of a bin's share (reference and live) in PSI, so an empty bin gives a finite term.

The usual choice (1e-4): an empty bin against one holding a share ``p`` adds about
``p * ln(p / 1e-4)``, 0.46 for p = 10%, alarming but bounded, and two empty bins add 0.
"""

REFERENCE_BINS = 10
"""Quantile bins of a reference profile's variable (the pipeline's ``distribution_profile`` uses as many)."""

# Shares plus the missing share of a profile must add up to 1 within this (they are counts / rows).
_SHARE_TOLERANCE = 1e-6


class ProfileError(ValueError):
    """A reference profile that does not have the format ``berg_pipelines.runtime.profile`` writes."""


def _float_vector(value: Any, what: str) -> FloatArray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ProfileError(f"{what} must be a list of numbers: {error}") from None
    if array.ndim != 1:
        raise ProfileError(f"{what} must be a flat list, got shape {array.shape}")
    return array


def _profile_field(profile: object, key: str) -> Any:
    if not isinstance(profile, Mapping):
        raise ProfileError(f"a distribution profile must be a mapping, got {type(profile).__name__}")
    if key not in profile:
        raise ProfileError(f"the distribution profile has no {key!r} (keys: {sorted(profile)})")
    return profile[key]


def _sorted_finite(values: ArrayLike) -> tuple[FloatArray, int]:
    """The finite values of a 1-d window (the profile's "present"), sorted, and the window's length.

    One vectorised sort per window: numpy's SIMD sort is about ten times faster than a
    binary search per value into the reference (unsorted keys mispredict every branch),
    and once sorted, PSI and KS need only binary searches of the reference's few
    points into the window. Sorting puts -inf first and +inf then NaN last, so the
    finite values are a slice.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"values must be 1-d, got shape {array.shape}")
    ordered = np.sort(array)
    low = int(np.searchsorted(ordered, -np.inf, side="right"))
    high = int(np.searchsorted(ordered, np.inf, side="left"))
    return ordered[low:high], len(array)


# --- PSI ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BinnedReference:
    """A variable's reference histogram: inner bin edges, the share of all rows per bin, the missing share.

    Value ``x`` falls into bin ``np.searchsorted(edges, x, side="right")`` (so ``x`` equal
    to an edge belongs to the bin above it), one of ``len(edges) + 1`` bins; NaN and +-inf
    count as missing. ``shares`` and ``missing_share`` add up to 1.
    """

    edges: FloatArray
    shares: FloatArray
    missing_share: float

    def __post_init__(self) -> None:
        edges, shares = self.edges, self.shares
        if edges.ndim != 1 or shares.ndim != 1:
            raise ProfileError("edges and shares must be flat lists")
        if len(shares) != len(edges) + 1:
            raise ProfileError(
                f"{len(edges)} edges make {len(edges) + 1} bins, but the profile has {len(shares)} shares"
            )
        if not np.isfinite(edges).all():
            raise ProfileError("edges must be finite numbers")
        if len(edges) > 1 and not (np.diff(edges) > 0).all():
            raise ProfileError(f"edges must be strictly increasing, got {edges.tolist()}")
        if not (np.isfinite(shares).all() and (shares >= 0).all() and (shares <= 1).all()):
            raise ProfileError(f"shares must lie in [0, 1], got {shares.tolist()}")
        if not 0.0 <= self.missing_share <= 1.0:
            raise ProfileError(f"missing_share must lie in [0, 1], got {self.missing_share}")
        total = float(shares.sum()) + self.missing_share
        if abs(total - 1.0) > _SHARE_TOLERANCE:
            raise ProfileError(
                f"shares and missing_share must add up to 1 (the profile's rows), they add up to {total}"
            )

    @classmethod
    def from_profile(cls, profile: Mapping[str, Any]) -> BinnedReference:
        """From one variable's profile dict (``edges``, ``shares``, ``missing_share``).

        A variable without any present training value has no edges and no shares; it
        becomes one bin with share 0, so any present live value is drift.

        Raises:
            ProfileError: a key is absent, lengths do not match, edges are not increasing,
                shares are not shares of all rows.
        """
        edges = _float_vector(_profile_field(profile, "edges"), "edges")
        shares = _float_vector(_profile_field(profile, "shares"), "shares")
        missing = _profile_field(profile, "missing_share")
        if isinstance(missing, bool) or not isinstance(missing, int | float):
            raise ProfileError(f"missing_share must be a number, got {missing!r}")
        if len(edges) == 0 and len(shares) == 0:
            shares = np.zeros(1)
        return cls(edges=edges, shares=shares, missing_share=float(missing))

    @property
    def expected(self) -> FloatArray:
        """The reference shares of the bins then the missing bin, as PSI compares them."""
        return np.append(self.shares, self.missing_share)


def _psi_of_sorted(reference: BinnedReference, present: FloatArray, rows: int) -> float:
    """PSI of a window given as its sorted finite values ``present`` out of ``rows``."""
    if rows == 0:
        return float("nan")
    # Bin i holds edges[i - 1] <= x < edges[i]: the count below each edge, differenced.
    below_edges = np.searchsorted(present, reference.edges, side="left")
    counts = np.diff(np.concatenate(([0], below_edges, [len(present)])))
    actual = np.maximum(np.append(counts, rows - len(present)) / rows, PSI_EMPTY_BIN_SHARE)
    expected = np.maximum(reference.expected, PSI_EMPTY_BIN_SHARE)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi(reference: BinnedReference, values: ArrayLike) -> float:
    """Population Stability Index of live ``values`` against the reference bins: sum((a - e) * ln(a / e)).

    ``a`` and ``e`` are the live and reference shares of each bin and of the missing
    bin (NaN, +-inf), each floored at :data:`PSI_EMPTY_BIN_SHARE`. NaN for an empty window.
    O(n log n) in the window's length n (one sort).
    """
    present, rows = _sorted_finite(values)
    return _psi_of_sorted(reference, present, rows)


def binned_reference(values: ArrayLike, bins: int = REFERENCE_BINS) -> BinnedReference:
    """A reference histogram of ``values`` binned as a version's reference profile is binned.

    The pipeline's profile (``berg_pipelines.runtime.profile.distribution_profile``) cuts at
    the inner ``bins``-quantiles of the present values (duplicates merged) and counts each
    value into ``searchsorted(edges, x, side="right")``; this does the same, so a PSI against
    it means what the prediction drift PSI means. Used where the reference is live traffic
    (the champion's scores beside a shadow's), not a stored profile.

    Raises:
        ValueError: ``values`` is empty or not 1-d, or ``bins`` is below 2.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"values must be a non-empty 1-d array, got shape {array.shape}")
    present = array[np.isfinite(array)]
    if len(present) == 0:
        return BinnedReference(edges=np.empty(0), shares=np.zeros(1), missing_share=1.0)
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return BinnedReference(edges=edges, shares=counts / len(array), missing_share=1.0 - len(present) / len(array))


# --- KS ----------------------------------------------------------------------------------------


class ReferenceSample:
    """A reference sample reduced to what KS needs: its distinct values and its empirical CDF at each.

    ``cdf[k]`` is the share of the sample ``<= points[k]``, ``cdf_before[k]`` the share
    ``< points[k]``. NaN and +-inf are left out (as the profile leaves them out). Built
    once per reference and model version.
    """

    def __init__(self, sample: ArrayLike) -> None:
        ordered, _ = _sorted_finite(sample)
        points, counts = np.unique(ordered, return_counts=True)
        self.points: FloatArray = points
        self.size = len(ordered)
        self.cdf: FloatArray = np.cumsum(counts) / max(self.size, 1)
        self.cdf_before: FloatArray = np.concatenate(([0.0], self.cdf[:-1]))

    @classmethod
    def from_profile(cls, profile: Mapping[str, Any]) -> ReferenceSample:
        """From one variable's profile dict (its ``sample``: finite, sorted).

        Raises:
            ProfileError: the sample is absent, not finite or not sorted.
        """
        sample = _float_vector(_profile_field(profile, "sample"), "sample")
        if not np.isfinite(sample).all():
            raise ProfileError("the sample must hold finite numbers only")
        if len(sample) > 1 and (np.diff(sample) < 0).any():
            raise ProfileError("the sample must be sorted")
        return cls(sample)


def _ks_of_sorted(reference: ReferenceSample, present: FloatArray) -> float:
    """KS D of a window given as its sorted finite values ``present``.

    Between two reference points the reference CDF is flat and the live one rises, so
    the supremum of |difference| is reached at a reference point (live share ``<=`` it)
    or just before the next one (live share ``<`` it, reached at the largest live value
    below it): two binary searches of the reference points into the window.
    """
    live = len(present)
    if live == 0 or reference.size == 0:
        return float("nan")
    live_at = np.searchsorted(present, reference.points, side="right") / live
    live_before = np.searchsorted(present, reference.points, side="left") / live
    return float(max(np.abs(reference.cdf - live_at).max(), np.abs(reference.cdf_before - live_before).max()))


def ks_statistic(reference: ReferenceSample | ArrayLike, values: ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov D of live ``values`` against the reference sample.

    Equals ``scipy.stats.ks_2samp(sample, v).statistic`` with ``v`` the finite live
    values: NaN and +-inf are left out, as the profile's sample leaves them out. NaN when
    either side has no finite value. ``reference`` is a :class:`ReferenceSample` (built
    once) or the sample itself, any order. O(n log n) in the window's length n (one sort).
    """
    sample = reference if isinstance(reference, ReferenceSample) else ReferenceSample(reference)
    present, _ = _sorted_finite(values)
    return _ks_of_sorted(sample, present)


# --- Both at once, per variable and per window --------------------------------------------------


@dataclass(frozen=True)
class DriftResult:
    """A variable's drift over a window: PSI, KS D, the window's rows and the share of them missing."""

    psi: float
    ks: float
    rows: int
    missing_share: float


@dataclass(frozen=True, eq=False)
class DistributionReference:
    """One variable's reference: its bins for PSI and its sample for KS, both from one profile dict."""

    bins: BinnedReference
    sample: ReferenceSample

    @classmethod
    def from_profile(cls, profile: Mapping[str, Any]) -> DistributionReference:
        """From one variable's profile dict (``distribution_profile``'s output).

        Raises:
            ProfileError: the profile is malformed (the message says how).
        """
        return cls(BinnedReference.from_profile(profile), ReferenceSample.from_profile(profile))

    def drift(self, values: ArrayLike) -> DriftResult:
        """PSI and KS of a window of live values (equal to :func:`psi` and :func:`ks_statistic`), one sort for both."""
        present, rows = _sorted_finite(values)
        return DriftResult(
            psi=_psi_of_sorted(self.bins, present, rows),
            ks=_ks_of_sorted(self.sample, present),
            rows=rows,
            missing_share=(rows - len(present)) / rows if rows else float("nan"),
        )


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """A model version's whole reference profile: one :class:`DistributionReference` per feature, one for scores."""

    features: Mapping[str, DistributionReference]
    prediction: DistributionReference
    watch_only: frozenset[str] = frozenset()
    """Features marked ``retrain_on_drift: false``: their drift is measured, and starts no retraining run."""

    @classmethod
    def from_profile(cls, profile: Mapping[str, Any]) -> ReferenceProfile:
        """From ``reference_profile``'s dict (``features``: name -> profile, ``prediction``: profile).

        Raises:
            ProfileError: a part is absent or malformed (the message names the feature).
        """
        features = _profile_field(profile, "features")
        if not isinstance(features, Mapping):
            raise ProfileError("the profile's 'features' must map feature names to distribution profiles")
        built = {}
        watch_only = set()
        for name, feature in features.items():
            try:
                built[str(name)] = DistributionReference.from_profile(feature)
            except ProfileError as error:
                raise ProfileError(f"feature {name!r}: {error}") from None
            retrain = feature.get("retrain_on_drift", True)  # profiles before the flag: every feature retrains
            if not isinstance(retrain, bool):
                raise ProfileError(f"feature {name!r}: retrain_on_drift must be true or false, not {retrain!r}")
            if not retrain:
                watch_only.add(str(name))
        try:
            prediction = DistributionReference.from_profile(_profile_field(profile, "prediction"))
        except ProfileError as error:
            raise ProfileError(f"prediction: {error}") from None
        return cls(features=built, prediction=prediction, watch_only=frozenset(watch_only))


def feature_drift(
    reference: ReferenceProfile, matrix: ArrayLike, feature_names: Sequence[str]
) -> dict[str, DriftResult]:
    """PSI and KS of every feature over a window: ``matrix`` has one row per prediction, one column per name.

    Raises:
        ValueError: the matrix is not 2-d with ``len(feature_names)`` columns.
        KeyError: a feature has no reference in the profile.
    """
    window = np.asarray(matrix, dtype=np.float64)
    if window.ndim != 2 or window.shape[1] != len(feature_names):
        raise ValueError(f"expected a (rows, {len(feature_names)}) matrix, got shape {window.shape}")
    unknown = [name for name in feature_names if name not in reference.features]
    if unknown:
        raise KeyError(f"no reference profile for features {unknown}")
    # Column by column: the sort copies each column anyway, so the matrix is not copied whole.
    return {name: reference.features[name].drift(window[:, index]) for index, name in enumerate(feature_names)}


# --- Quality over labelled predictions -------------------------------------------------------------


@dataclass(frozen=True)
class QualitySummary:
    """Quality and business outcome of a window's labelled predictions at the version's threshold.

    ``precision`` is NaN when nothing was flagged, ``recall`` and ``pr_auc`` when no
    positive is labelled; ``sufficient`` says whether the window holds enough labels to
    report any of it (see :func:`enough_labels`). Amounts and costs are in the card's currency.
    """

    labels: int
    positives: int
    sufficient: bool
    threshold: float
    pr_auc: float
    precision: float
    recall: float
    calibration_error: float
    positive_amount_caught: float
    positive_amount_missed: float
    false_positive_cost: float
    expected_cost: float


def enough_labels(labels: int, positives: int, *, min_labels: int, min_positives: int) -> bool:
    """Whether a window with ``labels`` labelled predictions, ``positives`` of them positive, can be judged.

    Both minimums are inclusive and at least 1 (PR-AUC and recall need a positive).
    """
    if min_labels < 1 or min_positives < 1:
        raise ValueError(f"min_labels and min_positives must be >= 1, got {min_labels} and {min_positives}")
    return labels >= min_labels and positives >= min_positives


def quality_summary(
    labels: ArrayLike,
    scores: ArrayLike,
    amounts: ArrayLike,
    *,
    threshold: float,
    costs: Costs,
    min_labels: int,
    min_positives: int,
    calibration_bins: int = 10,
) -> QualitySummary:
    """PR-AUC, precision, recall, calibration and the card's costs over labelled predictions (score >= threshold flags).

    ``labels`` are 0/1 (1: the positive class), ``scores`` the served scores, ``amounts`` the transaction amounts.

    Raises:
        ValueError: the arrays differ in length or are not 1-d, labels are not 0/1, scores or amounts not finite.
    """
    truth = np.asarray(labels)
    if truth.ndim != 1 or not np.isin(truth, (0, 1)).all():
        raise ValueError("labels must be a 1-d array of 0 and 1")
    money = np.asarray(amounts, dtype=np.float64)
    if money.shape != truth.shape:
        raise ValueError(f"amounts must match labels, got shapes {money.shape} and {truth.shape}")
    if not np.isfinite(money).all():
        raise ValueError("amounts must be finite")
    positives = int(np.count_nonzero(truth))
    outcomes = outcomes_at(costs, truth, scores, money, threshold)
    return QualitySummary(
        labels=len(truth),
        positives=positives,
        sufficient=enough_labels(len(truth), positives, min_labels=min_labels, min_positives=min_positives),
        threshold=float(threshold),
        pr_auc=average_precision(truth, scores),
        precision=outcomes.precision,
        recall=outcomes.recall,
        calibration_error=calibration_error(truth, scores, calibration_bins),
        positive_amount_caught=outcomes.positive_amount_caught,
        positive_amount_missed=outcomes.positive_amount_missed,
        false_positive_cost=costs.false_positive * outcomes.false_positives,
        expected_cost=outcomes.expected_cost,
    )
