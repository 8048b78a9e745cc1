"""The time-shifted holdout: the challenger on the test rows with features frozen at the test window's start.

The dataset step writes ``test_frozen.parquet`` (:func:`berg_pipelines.runtime.dataset.frozen_test_frame`):
the test split's rows, labels and request columns, with every stored view joined at the start of the test
window instead of at each row's own time. Nothing the store learnt during the test window can reach those
features, so a model scores there only what it can predict from the past. The evaluation scores the
challenger on both at the same threshold (the one chosen on validation) and reports the gap in PR-AUC.

An honest model loses a little on the frozen rows: its features are staler (a user's counts stop at the
window's start, TTLs run out). A model that leans on something the store only knows at or after the event
it predicts (a label written back into a view, a window reaching forward) loses most of its skill there:
that is the gap flagged. The rule and the numbers behind it are at :data:`GAP_LIMIT`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import pandas as pd

from berg.problem.card import ProblemCard
from berg_pipelines.runtime.evaluate import ModelEvaluation, Scorer, evaluate_model

__all__ = ["GAP_LIMIT", "frozen_holdout", "pr_auc_gap", "render_frozen_holdout"]

GAP_LIMIT = 0.5
"""The largest PR-AUC drop from the test split to its frozen copy that is not flagged.

Measured with ``bench/frozen_holdout.py`` on the pipeline tests' world (60 simulated days, a 30-day window, the
test split its latest 4.5 days), PR-AUC on test -> frozen, gap:

- clean model, world seeds 3 to 8: 0.551 -> 0.215 (0.336; seed 3 is the tests' world), 0.696 -> 0.442 (0.255),
  0.688 -> 0.446 (0.242), 0.287 -> 0.235 (0.051), 0.511 -> 0.254 (0.257), 0.507 -> 0.494 (0.014): staler
  features cost an honest model up to 0.34;
- the label written back into a user view a second before each transaction (the pipeline tests' planted label view),
  checks bypassed: 1.000 -> 0.019 (0.981) on seed 3, 0.997 -> 0.077 (0.920) on seed 6;
- the recompute check's four planted producer bugs (joined at the prediction time, a window reaching forward, the
  next row's value, an on-demand function reading the label), checks bypassed: gaps 0.254, 0.287, 0.278, 0.062
  on seed 3 and 0.039, -0.167, 0.058, -0.038 on seed 6: inside the clean range. They barely lift the test
  PR-AUC in this world, and the last is not a leak in time; the recompute check is what catches them.

0.5 lies between the largest clean gap (0.34) and the smallest label-leak gap (0.92), about 1.5 times the
former, leaving room for a leak that touches only part of the rows. No rule on this gap separates the subtle
producer bugs from clean models: it flags a model that leans on the future, not every leak.
"""


def pr_auc_gap(pr_auc_test: float, pr_auc_frozen: float, limit: float = GAP_LIMIT) -> tuple[float, bool]:
    """The drop in PR-AUC from the test split to its frozen copy, and whether it is flagged (above ``limit``).

    A PR-AUC that cannot be computed (NaN: one class only) gives a NaN gap, which is not flagged.
    """
    gap = pr_auc_test - pr_auc_frozen
    return gap, math.isfinite(gap) and gap > limit


def frozen_holdout(
    name: str,
    scorer: Scorer,
    card: ProblemCard,
    on_test: ModelEvaluation,
    frozen: pd.DataFrame,
    amount: str,
    *,
    frozen_at: str,
    limit: float = GAP_LIMIT,
) -> dict[str, Any]:
    """``scorer`` (evaluated on the test split as ``on_test``) on the frozen test rows at ``on_test``'s threshold.

    Returns what :class:`berg_pipelines.runtime.evaluate.EvaluationReport` keeps as ``frozen_holdout``:
    ``model``, ``frozen_at``, ``rows``, ``threshold``, ``pr_auc`` and ``expected_cost`` on ``test`` and on
    ``frozen``, ``pr_auc_gap`` (test minus frozen), ``expected_cost_gap`` (frozen minus test: what the frozen
    rows cost more), ``limit``, ``flagged`` and the frozen evaluation in full (``frozen_evaluation``).
    """
    shifted = evaluate_model(name, scorer, card, frozen, frozen, amount, threshold=on_test.threshold)
    gap, flagged = pr_auc_gap(on_test.pr_auc, shifted.pr_auc, limit)
    return {
        "model": name,
        "frozen_at": frozen_at,
        "rows": len(frozen),
        "threshold": on_test.threshold,
        "test": {"pr_auc": on_test.pr_auc, "expected_cost": on_test.expected_cost},
        "frozen": {"pr_auc": shifted.pr_auc, "expected_cost": shifted.expected_cost},
        "pr_auc_gap": gap,
        "expected_cost_gap": shifted.expected_cost - on_test.expected_cost,
        "limit": limit,
        "flagged": flagged,
        "frozen_evaluation": asdict(shifted),
    }


def _number(value: Any, spec: str) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else format(float(value), spec)


def render_frozen_holdout(holdout: Mapping[str, Any] | None) -> str:
    """The report's "Time-shifted holdout" section; empty without one (a dataset built before it existed)."""
    if not holdout:
        return ""
    test, frozen = holdout["test"], holdout["frozen"]
    verdict = (
        f"<p><strong>Flagged:</strong> the PR-AUC drops by more than {holdout['limit']:.2f} when the features "
        "cannot see the test window. The model may rest on data the store only holds at or after the event it "
        "predicts (a label or future value written back into a view); check the features before trusting the "
        "test metrics.</p>"
        if holdout["flagged"]
        else f"<p>Not flagged: the drop is within {holdout['limit']:.2f}, what staler features cost an honest model."
        "</p>"
    )
    rows = "".join(
        f"<tr><td>{label}</td><td>{_number(values['pr_auc'], '.4f')}</td>"
        f"<td>{_number(values['expected_cost'], ',.2f')}</td></tr>"
        for label, values in (("test (features at each event)", test), ("frozen at the window's start", frozen))
    )
    return (
        "<h3>Time-shifted holdout</h3>"
        f"<p>The {html.escape(str(holdout['model']))} on the {holdout['rows']} test events with every stored view "
        f"frozen at {html.escape(str(holdout['frozen_at']))} (the test window's start), at the same threshold "
        f"({_number(holdout['threshold'], '.4f')}).</p>"
        f"<table><tr><th>features</th><th>PR-AUC</th><th>expected cost</th></tr>{rows}</table>"
        f"<p>PR-AUC gap (test minus frozen): {_number(holdout['pr_auc_gap'], '+.4f')}; expected cost gap (frozen "
        f"minus test): {_number(holdout['expected_cost_gap'], '+,.2f')}.</p>" + verdict
    )
