"""The demo's HTML report: drift, quality and the served version over time, the alert and promotion
moments, champion vs challenger vs baseline, and a summary table. One self-contained page.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from berg.registry import ModelRegistry
from berg_app.lifecycle.probes import PrometheusClient
from berg_app.lifecycle.story import StoryOutcome

__all__ = ["TriggerGroup", "group_triggers", "summary_rows", "write_report"]

_SERIES = {
    "max feature PSI": "max by (version) (berg_monitoring_feature_psi{{model='{model}'}})",
    "prediction PSI": "max by (version) (berg_monitoring_prediction_psi{{model='{model}'}})",
    "live PR-AUC": "max by (version) (berg_monitoring_quality_pr_auc{{model='{model}'}})",
    "predictions monitored (cumulative)": "sum by (version) (berg_monitoring_predictions_total{{model='{model}'}})",
}


@dataclass(frozen=True)
class TriggerGroup:
    """Identical decisions of the controller (same decision, source, alert and reason), counted."""

    decision: str
    source: str
    alertname: str
    reason: str
    count: int
    first_at: str
    last_at: str


_NEVER = datetime.max.replace(tzinfo=UTC)


def _moment(value: object) -> tuple[datetime, str]:
    """A trigger's ``created_at`` as (UTC time to sort by, text to show); text that is no ISO 8601 time
    sorts last."""
    text = "" if value is None else str(value)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return _NEVER, text
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)), text


def group_triggers(triggers: Iterable[Mapping[str, Any]]) -> list[TriggerGroup]:
    """The controller's trigger records grouped by (decision, source, alertname, reason), in the order each
    group first appeared, with how many and the first and last ``created_at``."""
    groups: dict[tuple[str, str, str, str], list[tuple[datetime, str]]] = {}
    for trigger in triggers:
        decision, source, alertname, reason = (
            "" if trigger.get(name) is None else str(trigger.get(name))
            for name in ("decision", "source", "alertname", "reason")
        )
        groups.setdefault((decision, source, alertname, reason), []).append(_moment(trigger.get("created_at")))
    grouped = [(key, sorted(moments)) for key, moments in groups.items()]
    grouped.sort(key=lambda item: item[1][0])
    return [TriggerGroup(*key, len(moments), moments[0][1], moments[-1][1]) for key, moments in grouped]


_MARKED = (
    "serving sees the drift",
    "alert firing",
    "retraining alerts unsilenced",
    "shadow started",
    "challenger promoted",
)
"""Moments drawn as vertical lines on the plots."""

_COMPARED = (("pr_auc", "PR-AUC (higher is better)"), ("expected_cost", "expected cost (lower is better)"))


def summary_rows(outcome: StoryOutcome, registry: ModelRegistry, model: str) -> list[tuple[str, str]]:
    """What happened, as (what, value) rows: for the terminal and the report."""
    rows: list[tuple[str, str]] = [
        ("event time: history", f"{outcome.timeline.history_start:%Y-%m-%d} .. {outcome.timeline.onset:%Y-%m-%d}"),
        ("event time: drift", f"{outcome.timeline.onset:%Y-%m-%d} .. {outcome.timeline.drift_end:%Y-%m-%d}"),
        ("event time: after", f"{outcome.timeline.drift_end:%Y-%m-%d} .. {outcome.timeline.end:%Y-%m-%d}"),
        ("champion", outcome.first_version or "-"),
        ("challenger promoted", outcome.new_version or "-"),
        ("the gate's decision", outcome.decision or "-"),
    ]
    for version in (outcome.first_version, outcome.new_version):
        if version is None:
            continue
        metrics = registry.get(model, version).metrics
        for key in ("pr_auc", "expected_cost", "baseline_pr_auc", "champion_pr_auc", "champion_expected_cost"):
            if key in metrics:
                rows.append((f"{version} {key} (its test window)", f"{metrics[key]:,.4f}"))
    if outcome.rollout is not None:
        steps = " -> ".join(event.action.replace("_", " ") for event in outcome.rollout.history)
        policy = outcome.rollout.history[0].policy if outcome.rollout.history else ""
        rows.append((f"rollout ({policy or 'policy'})", steps or outcome.rollout.stage))
        if outcome.rollout.shadow is not None:
            rows.append(("shadow stage, same requests", outcome.rollout.shadow.describe()))
        started, passed = outcome.at("shadow started"), outcome.at("shadow passed")
        if started and passed:
            rows.append(("shadow started -> passed", f"{(passed - started).total_seconds():.0f} s"))
    alert, promoted = outcome.at("alert firing"), outcome.at("serving the challenger")
    drift = outcome.at("serving sees the drift")
    unsilenced, run_started = outcome.at("retraining alerts unsilenced"), outcome.at("retraining run started")
    for what, since, until in (
        ("drift served -> alert firing", drift, alert),
        ("alert firing -> challenger served", alert, promoted),
        ("drift served -> challenger served", drift, promoted),
        ("drift stored, alerts unsilenced -> run started", unsilenced, run_started),
        ("run started -> challenger served", run_started, promoted),
    ):
        if since and until:
            rows.append((what, f"{(until - since).total_seconds():.0f} s"))
    rows.append(("alert-started runs", str(sum(run["source"] != "manual" for run in outcome.runs))))
    if outcome.drift_tally is not None:
        tally = outcome.drift_tally
        served = ", ".join(f"{v}: {n:,}" for v, n in sorted(tally.by_version.items()))
        rows.append(("scored during drift", f"{tally.scored:,} ({served}); failed calls {tally.failed}"))
    if outcome.drift_replay is not None:
        rows.append(("drift replay, slice by slice", outcome.drift_replay.describe()))
    if outcome.live is not None:
        rows.append(("live traffic, in order", outcome.live.describe()))
    if outcome.watched_drift:
        highest = ", ".join(f"{name} {psi:.3f}" for name, psi in list(outcome.watched_drift.items())[:3])
        rows.append(("new champion's own drift while watched, highest PSI", highest))
    rows.append(("demo wall time", f"{(outcome.moments[-1].at - outcome.started_at).total_seconds():.0f} s"))
    return rows


def _comparison(outcome: StoryOutcome, registry: ModelRegistry, model: str) -> dict[str, dict[str, float]]:
    """Baseline, champion and challenger on the challenger's test window: metric -> who -> value."""
    version = (outcome.challenger or {}).get("result_version")
    if not version:
        return {}
    challenger = registry.get(model, str(version))
    metrics = challenger.metrics
    compared: dict[str, dict[str, float]] = {}
    for metric, label in _COMPARED:
        values = {
            "baseline": metrics.get(f"baseline_{metric}"),
            f"champion {outcome.first_version}": metrics.get(f"champion_{metric}"),
            f"challenger {challenger.version}": metrics.get(metric),
        }
        compared[label] = {who: float(value) for who, value in values.items() if value is not None}
    return compared


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _comparison_plot(compared: dict[str, dict[str, float]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(compared), figsize=(10, 3))
    for axis, (title, values) in zip(axes, compared.items(), strict=True):
        bars = axis.bar(list(values), list(values.values()), color=["grey", "tab:blue", "tab:orange"][: len(values)])
        axis.bar_label(bars, fmt="%.3g", fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.tick_params(axis="x", labelsize=8)
    return _png(figure)


def _plots(prometheus: PrometheusClient, outcome: StoryOutcome, model: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start, end = outcome.started_at.timestamp(), outcome.moments[-1].at.timestamp()
    figure, axes = plt.subplots(len(_SERIES), 1, figsize=(10, 2.6 * len(_SERIES)), sharex=True)
    for axis, (title, query) in zip(axes, _SERIES.items(), strict=True):
        for series in prometheus.query_range(query.format(model=model), start, end, 5):
            times = [datetime.fromtimestamp(float(t)) for t, _ in series["values"]]
            values = [float(v) for _, v in series["values"]]
            axis.plot(times, values, marker=".", markersize=3, label=series["metric"].get("version", ""))
        if "PSI" in title:
            axis.axhline(0.2, linestyle="--", color="grey", linewidth=0.8)
        for moment in outcome.moments:
            if moment.what in _MARKED:
                axis.axvline(datetime.fromtimestamp(moment.at.timestamp()), color="red", linestyle=":", linewidth=1)
        axis.set_title(title, fontsize=10)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel(f"wall-clock time (red: {', '.join(_MARKED)})")
    return _png(figure)


def write_report(
    path: Path, outcome: StoryOutcome, prometheus: PrometheusClient, registry: ModelRegistry, model: str
) -> Path:
    """Write the page to ``path`` and return it."""
    rows = "".join(
        f"<tr><td>{html.escape(what)}</td><td>{html.escape(value)}</td></tr>"
        for what, value in summary_rows(outcome, registry, model)
    )
    moments = "".join(
        f"<tr><td>{moment.at:%H:%M:%S}</td><td>{html.escape(moment.what)}</td></tr>" for moment in outcome.moments
    )
    triggers = "".join(
        f"<tr><td>{html.escape(group.first_at)}</td><td>{html.escape(group.last_at)}</td><td>{group.count}</td>"
        f"<td>{html.escape(group.source)}</td><td>{html.escape(group.alertname)}</td>"
        f"<td>{html.escape(group.decision)}</td><td>{html.escape(group.reason)}</td></tr>"
        for group in group_triggers(outcome.triggers)
    )
    decision: Any = (outcome.challenger or {}).get("reason", "")
    plots = _plots(prometheus, outcome, model)
    compared = _comparison(outcome, registry, model)
    comparison = ""
    if compared:
        image = _comparison_plot(compared)
        comparison = (
            "<h2>Champion vs challenger vs baseline, on the challenger's test window</h2>"
            f'<img alt="champion, challenger and baseline compared" src="data:image/png;base64,{image}">'
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Berg demo: {html.escape(model)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td{{padding:2px 10px}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#f3f3f3}}</style></head><body>
<h1>Berg: the lifecycle of {html.escape(model)}</h1>
<p>History, the first model, drift, and the loop closing by itself: monitoring, Prometheus, Alertmanager,
the controller, the pipeline's gate, serving's swap. Run started {outcome.started_at:%Y-%m-%d %H:%M:%S} UTC.</p>
<h2>Summary</h2><table>{rows}</table>
{comparison}
<h2>Over time</h2><img alt="drift, quality and traffic by version" src="data:image/png;base64,{plots}">
<p>How the traffic was scored: as the application that produces it scores it, each event before it went
to Kafka, with the features the data plane had stored by then, never with anything from its future. The
replay goes slice by slice of event time (each slice is scored once the slices before it are stored), so a
change of an entity earlier in the same slice is not seen yet: the live figures are those of
a data plane one slice late, if anything pessimistic. Retraining alerts were silenced while the drift's
weeks were stored (a backfill of weeks in minutes), then delivered. Live quality needs labels, which
arrive days to weeks later in event time; the comparison on the challenger's test window, with
point-in-time features, is the one the gate used.</p>
<h2>Moments</h2><table>{moments}</table>
<h2>Triggers the controller saw</h2><p>Identical decisions are grouped.</p><table><tr><th>first</th><th>last</th>
<th>count</th><th>source</th><th>alert</th><th>decision</th><th>reason</th></tr>{triggers}</table>
<p>Retraining run: {html.escape(str(decision))}</p>
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
