"""Features a person should review: too good alone, or suddenly much more important than before.

:func:`berg.features.leakage.check_leakage` fails a run when one feature alone reaches a
ROC-AUC of 0.99: at that level the feature is the label. Real leaks are rarely that
clean. A value that leaks the label for part of the rows only (a backfilled field, a
status set a few days after the event for some cases) gives single-feature AUCs of
0.83 to 0.97, where a few legitimate features also live. Failing there would stop good
runs, so these features are *listed for review* instead:

- :func:`separable_features`: a feature whose ROC-AUC alone (either direction) is at
  least ``threshold`` (0.90 by default).
- :func:`importance_jumps`: a feature whose share of the model's total gain rose much
  between the previous training window's model (the champion) and this one (the
  challenger): a new leak shows up as a new, dominant feature.

Pure pandas and numpy, no I/O: the caller reads the frame and the models' importances
(``booster.get_score(importance_type="total_gain")``) and decides where the list goes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from berg.features.leakage import roc_auc

__all__ = [
    "DEFAULT_AUC_THRESHOLD",
    "DEFAULT_MIN_RATIO",
    "DEFAULT_MIN_RISE",
    "Suspicion",
    "SuspicionKind",
    "importance_jumps",
    "importance_shares",
    "separable_features",
    "single_feature_auc",
]

SuspicionKind = Literal["separable", "importance_jump"]

DEFAULT_AUC_THRESHOLD = 0.90
"""Listed from here; :func:`berg.features.leakage.check_leakage` fails the run from 0.99."""

DEFAULT_MIN_RISE = 0.10
"""A jump raises a feature's share of total gain by at least this much (absolute, 0-1 scale) ..."""

DEFAULT_MIN_RATIO = 3.0
"""... and to at least this many times its previous share (a feature absent before counts from 0).

Measured with the pipeline tests' simulator (``tests/feature_world.py``, seed 3; XGBoost as the
training step fits it; shares of ``total_gain``):

- The tests' 60-day world holds one 30-day label-complete window; retraining it with another
  seed (either model as the previous one) raised no feature's share by more than 0.024, and
  none by more than x1.7.
- A 90-day world, 30-day windows ending 0, 3, 7, 10 and 14 days apart (previous window's model
  against the later one's) and the same window with another seed: the largest absolute rise was
  0.115 (the top feature, 0.48 to 0.60 between seeds, x1.24); no feature rising by 0.10 or more
  rose more than x1.24, and no feature whose share at least doubled rose by more than 0.036.
- The same world's window ending 21 days before the others (days 9 to 39, while a feature
  computed from 30 days of known labels was still filling up) against each later one: that
  feature went from 0.25 to 0.60-0.63 (x2.42-2.54). A clean retrain, so the ratio is 3, not 2.

So neither a clean retrain's reshuffle among the top features (large rise, small ratio) nor a
minor feature's wobble (large ratio, rise under 0.05) is listed, while a new feature that takes
a tenth of the gain, or an old one that triples to it, is. ``bench/importance_jumps.py`` reproduces
these numbers.
"""


@dataclass(frozen=True)
class Suspicion:
    """One feature for a person to review, and why."""

    feature: str
    kind: SuspicionKind
    reason: str
    """A sentence: what was measured, against which threshold, and what to look for."""
    value: float
    """The measured value: the single-feature ROC-AUC (``separable``) or the new share of total gain
    (``importance_jump``)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def single_feature_auc(values: pd.Series, labels: np.ndarray, *, min_class_rows: int = 10) -> float:
    """The ROC-AUC of one feature's values for the 0/1 ``labels``, direction-free: ``max(auc, 1 - auc)``.

    Only rows where the feature has a value count: a missing value is no evidence either way, and
    ranking it as a value of its own would make the result depend on where it is placed. (A value,
    missing included, that is set on one class only is what the leakage check's indicator test
    fails.) NaN when the values are not numeric or boolean, or when either class has fewer than
    ``min_class_rows`` rows with a value.
    """
    if not (pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype)):
        return math.nan
    present = values.notna().to_numpy()
    y = np.asarray(labels).astype(np.int8)[present]
    positives = int(y.sum())
    if min(positives, len(y) - positives) < min_class_rows:
        return math.nan
    auc = roc_auc(values[present].astype("float64").to_numpy(), y)
    return max(auc, 1.0 - auc)


def separable_features(
    frame: pd.DataFrame,
    label_column: str,
    feature_columns: Iterable[str],
    *,
    threshold: float = DEFAULT_AUC_THRESHOLD,
    min_class_rows: int = 10,
) -> list[Suspicion]:
    """Features whose ROC-AUC alone (:func:`single_feature_auc`) is at least ``threshold``, strongest first.

    The label is binary: its larger value is the positive class; rows without a label are left out.
    Features that cannot be measured (not numeric, too few rows of a class) are not listed.
    """
    known = frame[label_column].notna().to_numpy()
    label = frame.loc[known, label_column]
    classes = pd.unique(label)
    if len(classes) != 2:
        return []
    labels = (label == max(classes)).to_numpy().astype(np.int8)
    found: list[Suspicion] = []
    for column in feature_columns:
        values = frame.loc[known, column].reset_index(drop=True)
        auc = single_feature_auc(values, labels, min_class_rows=min_class_rows)
        if math.isnan(auc) or auc < threshold:
            continue
        present = int(values.notna().sum())
        found.append(
            Suspicion(
                feature=column,
                kind="separable",
                reason=(
                    f"alone it separates the label with ROC-AUC {auc:.4f} over {present} rows with a value "
                    f"(review from {threshold}, the run fails from 0.99): check that every value was known "
                    "before the prediction time, also where the source data or the view is trusted"
                ),
                value=auc,
            )
        )
    return sorted(found, key=lambda suspicion: -suspicion.value)


def importance_shares(importance: Mapping[str, float]) -> dict[str, float]:
    """Each feature's share of the total (gains to shares summing to 1); empty when the total is not positive."""
    total = sum(max(float(value), 0.0) for value in importance.values())
    if not total > 0:
        return {}
    return {name: max(float(value), 0.0) / total for name, value in importance.items()}


def importance_jumps(
    challenger: Mapping[str, float],
    champion: Mapping[str, float],
    *,
    min_rise: float = DEFAULT_MIN_RISE,
    min_ratio: float = DEFAULT_MIN_RATIO,
) -> list[Suspicion]:
    """Features whose share of total gain jumped from the champion (previous window) to the challenger.

    Both maps are importances per feature (``booster.get_score(importance_type="total_gain")``),
    normalised here to shares of their own total. A jump: the challenger's share is at least
    ``min_rise`` above the champion's *and* at least ``min_ratio`` times it. A feature the
    champion did not use (or did not have) counts from 0. Largest rise first (then by name). Nothing is listed
    when either model has no positive importance.
    """
    new, old = importance_shares(challenger), importance_shares(champion)
    if not new or not old:
        return []
    found: list[tuple[float, Suspicion]] = []
    for feature, share in new.items():
        before = old.get(feature, 0.0)
        rise = share - before
        if rise < min_rise or share < min_ratio * before:
            continue
        was = f"{before:.1%}" if feature in old else "0% (not used by the champion)"
        found.append(
            (
                rise,
                Suspicion(
                    feature=feature,
                    kind="importance_jump",
                    reason=(
                        f"its share of the model's total gain jumped from {was} in the previous window's model "
                        f"to {share:.1%} (reviewed from a rise of {min_rise:.0%} to at least {min_ratio:g}x the "
                        "previous share): check what changed in how it is computed or filled"
                    ),
                    value=share,
                ),
            )
        )
    return [suspicion for _, suspicion in sorted(found, key=lambda pair: (-pair[0], pair[1].feature))]
