"""Champion against shadow on the same requests: agreement, score PSI and PR-AUC of each. Pure numpy, no I/O.

Every statistic is over one pair's window (:mod:`berg_monitoring.shadow_window`), so
both models are judged on exactly the same requests and no difference in traffic can
pass for a difference in models:

- decision agreement and flips: the share and the count of requests where the shadow
  would have decided otherwise than the champion did;
- score PSI: the shadow's scores against the champion's (the champion is the reference),
  binned and floored as prediction drift is (:func:`~berg_monitoring.statistics.binned_reference`,
  :func:`~berg_monitoring.statistics.psi`); absent below ``min_rows`` requests, as drift is;
- PR-AUC of each over the requests whose label is settled, as the champion's quality
  window settles it; absent unless those labels are enough to judge
  (:func:`~berg_monitoring.statistics.enough_labels`) and hold both classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from uuid import UUID

import numpy as np

from berg.problem.metrics import average_precision
from berg_monitoring.shadow_window import ShadowWindows
from berg_monitoring.statistics import binned_reference, enough_labels, psi

__all__ = ["Resolution", "ShadowComparison", "ShadowSettings", "compare_shadows"]

Resolution = Callable[[UUID], bool | None]
"""A scored event's settled label: True positive, False negative, None not settled (yet)."""


@dataclass(frozen=True)
class ShadowSettings:
    min_rows: int
    """Below this many requests in a pair's window its score PSI is absent (the drift window's minimum)."""
    min_labels: int
    min_positives: int


@dataclass(frozen=True)
class ShadowComparison:
    """One (champion version, shadow version) pair over its window; NaN where a statistic is not judged."""

    champion_version: str
    shadow_version: str
    predictions: int
    """Shadowed requests in the window."""
    labelled: int
    """Of those, the ones whose label is settled (positive within the horizon, or negative past it)."""
    positives: int
    agreement: float
    flips: int
    score_psi: float
    """NaN below ``min_rows`` requests."""
    quality_sufficient: bool
    """The settled labels are enough to judge and hold both classes: the PR-AUCs are numbers."""
    champion_pr_auc: float
    shadow_pr_auc: float


def compare_shadows(
    windows: ShadowWindows,
    resolution: Resolution,
    settings: ShadowSettings,
    silenced: Collection[str] = frozenset(),
) -> tuple[ShadowComparison, ...]:
    """Every pair's comparison, pairs whose champion is in ``silenced`` (out of production past the grace) left out.

    Args:
        resolution: the settled label of a scored event (the champion's join:
            :meth:`berg_monitoring.windows.MonitoringState.resolution`).
    """
    compared = []
    for (champion, shadow), window in windows.pairs.items():
        if champion in silenced or not len(window):
            continue
        rows = window.rows()
        # -1: not settled, 0: negative, 1: positive.
        outcomes = np.fromiter(
            (-1 if (label := resolution(key)) is None else int(label) for key in rows.scored_event_ids),
            np.int64,
            len(rows.scored_event_ids),
        )
        settled = outcomes >= 0
        truth = outcomes[settled]
        positives = int(truth.sum())
        # One class makes any ranking's PR-AUC 1 (all positive) or undefined: no verdict on either model.
        sufficient = enough_labels(
            len(truth), positives, min_labels=settings.min_labels, min_positives=settings.min_positives
        ) and positives < len(truth)
        agree = int(np.count_nonzero(rows.agree))
        compared.append(
            ShadowComparison(
                champion_version=champion,
                shadow_version=shadow,
                predictions=len(rows.agree),
                labelled=len(truth),
                positives=positives,
                agreement=agree / len(rows.agree),
                flips=len(rows.agree) - agree,
                score_psi=psi(binned_reference(rows.champion_scores), rows.shadow_scores)
                if len(rows.agree) >= settings.min_rows
                else math.nan,
                quality_sufficient=sufficient,
                champion_pr_auc=average_precision(truth, rows.champion_scores[settled]) if sufficient else math.nan,
                shadow_pr_auc=average_precision(truth, rows.shadow_scores[settled]) if sufficient else math.nan,
            )
        )
    return tuple(compared)
