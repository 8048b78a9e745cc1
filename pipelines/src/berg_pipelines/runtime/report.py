"""The evaluation report as one HTML page with its plots inline, for the Kubeflow UI's HTML viewer."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in a pipeline step

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from berg.problem.card import ProblemCard
from berg.problem.metrics import roc_curve
from berg_pipelines.runtime.evaluate import EvaluationReport, ModelEvaluation
from berg_pipelines.runtime.gate import Decision
from berg_pipelines.runtime.holdout import render_frozen_holdout

__all__ = ["render_report"]


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _curves(y: np.ndarray, scores: Mapping[str, np.ndarray]) -> str:
    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(y, score)
        roc_axis.plot(fpr, tpr, label=name)
        order = np.argsort(-score, kind="mergesort")
        hits = np.cumsum(y[order])
        precision = hits / np.arange(1, len(y) + 1)
        recall = hits / max(int(y.sum()), 1)
        pr_axis.plot(recall, precision, label=name)
    roc_axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
    roc_axis.set(title="ROC (test window)", xlabel="false positive rate", ylabel="true positive rate")
    pr_axis.set(title="Precision-recall (test window)", xlabel="recall", ylabel="precision")
    for axis in (roc_axis, pr_axis):
        axis.legend(loc="lower right")
    return _png(figure)


def _row(model: ModelEvaluation) -> str:
    cells = [
        model.name,
        f"{model.pr_auc:.4f}",
        f"{model.roc_auc:.4f}",
        f"{model.threshold:.4f}",
        f"{model.precision:.3f}",
        f"{model.recall:.3f}",
        f"{model.expected_cost:,.2f}",
        f"{model.positive_amount_caught:,.2f}",
        f"{model.positive_amount_missed:,.2f}",
    ]
    return "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"


def _recompute_section(recompute: Mapping[str, Any]) -> str:
    """What the dataset step's recompute check proved (``DatasetInfo.recompute``), for the reader of the run."""
    if not recompute:
        return ""
    compared = ", ".join(f"{html.escape(view)}: {count}" for view, count in recompute["values_compared"].items())
    # Runs recorded before views could be trusted listed the views they skipped as not recomputed.
    trusted = recompute.get("trusted", recompute.get("not_recomputed", {}))
    skipped = "".join(f"<li>{html.escape(view)}: {html.escape(why)}</li>" for view, why in trusted.items())
    return (
        f"<h3>Training data recomputed</h3><p>{recompute['rows_sampled']} of {recompute['rows']} training rows "
        f"(seed {recompute['seed']}) recomputed from the data before each prediction time: "
        f"{recompute['mismatches']} mismatches; values compared per view: {compared or 'none'}.</p>"
        + (f"<p>Trusted by the use case, not recomputed:</p><ul>{skipped}</ul>" if skipped else "")
    )


def _review_section(review: Sequence[Mapping[str, Any]]) -> str:
    """The features listed for a person to review (:mod:`berg.features.suspicion`), or that none were."""
    if not review:
        return (
            "<h3>Features to review</h3><p>None found: no feature alone reaches the review AUC, and no "
            "feature's share of importance jumped since the champion.</p>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(str(item['feature']))}</td><td>{html.escape(str(item['reason']))}</td>"
        f"<td>{float(item['value']):.4f}</td></tr>"
        for item in review
    )
    return (
        "<h3>Features to review</h3><p>Not failures: each may be a partial leak the checks cannot prove; "
        f"a person should look.</p><table><tr><th>feature</th><th>reason</th><th>value</th></tr>{rows}</table>"
    )


def render_report(
    card: ProblemCard,
    report: EvaluationReport,
    decision: Decision,
    y: np.ndarray,
    scores: Mapping[str, np.ndarray],
    recompute: Mapping[str, Any] | None = None,
    *,
    review: Sequence[Mapping[str, Any]] = (),
    frozen_holdout: Mapping[str, Any] | None = None,
) -> str:
    models = [report.challenger, report.baseline] + ([report.champion] if report.champion else [])
    header = "".join(
        f"<th>{h}</th>"
        for h in (
            "model",
            "PR-AUC",
            "ROC-AUC",
            "threshold",
            "precision",
            "recall",
            "expected cost",
            "positives caught",
            "positives missed",
        )
    )
    verdict = "Promote" if decision.promote else "Do not promote"
    reasons = "".join(f"<li>{html.escape(reason)}</li>" for reason in decision.reasons)
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in report.notes)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Berg evaluation: {html.escape(card.ref)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}</style></head>
<body>
<h1>Evaluation against {html.escape(card.ref)}</h1>
<p>{html.escape(card.summary)}</p>
<p>Test window: {report.test_rows} events, {report.test_positives} positive ({html.escape(card.target.column)}).
Thresholds chosen on the validation window by the card's policy ({html.escape(card.threshold.policy)});
costs in {card.costs.currency}.</p>
<table><tr>{header}</tr>{"".join(_row(model) for model in models)}</table>
<h2>{verdict}</h2><ul>{reasons}</ul>
{f"<h3>Notes</h3><ul>{notes}</ul>" if notes else ""}
{_recompute_section(recompute or {})}
{_review_section(review)}
{render_frozen_holdout(frozen_holdout)}
<img alt="ROC and precision-recall curves" src="data:image/png;base64,{_curves(y, scores)}">
</body></html>
"""
