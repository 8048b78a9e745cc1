"""The model health dashboard: drift, live quality, business cost, labels and freshness of the served model,
and the shadow challenger beside it.

Reads the monitoring exporter's gauges (``berg_monitoring_*`` in ``docs/metrics.md``) and the controller's pending
approvals. Drift and quality gauges are absent while their window holds too few predictions or labels; those panels
then say so.
"""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from berg_app.dashboards._common import Query, Row, assemble, label_variable, quantile, rate, stat, timeseries

__all__ = ["PR_AUC_DROP_ALERT_THRESHOLD", "PSI_ALERT_THRESHOLD", "UID", "dashboard"]

UID = "berg-model-health"

PSI_ALERT_THRESHOLD = 0.2
"""PSI above which FeatureDriftHigh and PredictionDriftHigh fire (``berg.rules.yml``), a line on the PSI panels."""

PR_AUC_DROP_ALERT_THRESHOLD = 0.1
"""Reference minus live PR-AUC above which ModelQualityDegraded fires (``berg.rules.yml``)."""

_MODEL = 'model=~"$model"'
_MODEL_VERSION = 'model=~"$model", version=~"$version"'
_TOO_FEW_PREDICTIONS = "no whole day of predictions in the drift window yet"
_TOO_FEW_LABELS = "too few labels in the quality window"
_SHADOW_PAIR = 'model=~"$model", champion_version=~"$version"'
"""The shadow gauges of the selected model, for the champion versions selected."""
_SHADOW_LEGEND = "{{shadow_version}} vs {{champion_version}}"
_NO_SHADOW = "no shadow challenger scoring requests"


_AMOUNT = "short"
"""Amounts and costs are plain numbers: their currency is a label (the problem card's), not a Grafana unit."""


def _gauge(metric: str, *, by: str = "model, version") -> str:
    return f"max by ({by}) ({metric}{{{_MODEL_VERSION}}})"


def _money(metric: str) -> str:
    """An amount or cost gauge, kept apart by currency (the label says which)."""
    return _gauge(metric, by="model, version, currency")


def dashboard() -> Dashboard:
    """Feature and prediction drift, live vs reference quality, business cost, labels and freshness."""
    return assemble(
        uid=UID,
        title="Berg / Model health",
        description="The served model in production: drift against its training reference, live quality from "
        "delayed labels, business cost, label coverage and data freshness.",
        tags=["monitoring"],
        variables=[
            label_variable("model", "Model", "berg_monitoring_predictions_total", description="Registry model name."),
            label_variable(
                "version",
                "Version",
                "berg_monitoring_predictions_total",
                where=_MODEL,
                description="Model versions whose predictions were consumed.",
            ),
        ],
        rows=[_drift(), _quality(), _business(), _labels_and_freshness(), _shadow_challenger()],
    )


def _drift() -> Row:
    return Row(
        "Drift",
        [
            timeseries(
                "Feature PSI",
                f"Population stability index of each feature over the drift window vs the version's training "
                f"reference. Above {PSI_ALERT_THRESHOLD} (dashed line) the feature drift alert fires.",
                [Query(_gauge("berg_monitoring_feature_psi", by="version, feature"), "{{feature}} {{version}}")],
                unit="none",
                minimum=0,
                threshold=PSI_ALERT_THRESHOLD,
                no_value=_TOO_FEW_PREDICTIONS,
            ),
            timeseries(
                "Feature KS statistic",
                "Two-sample Kolmogorov-Smirnov statistic of each feature vs the reference sample.",
                [Query(_gauge("berg_monitoring_feature_ks", by="version, feature"), "{{feature}} {{version}}")],
                unit="none",
                minimum=0,
                maximum=1,
                no_value=_TOO_FEW_PREDICTIONS,
            ),
            timeseries(
                "Prediction PSI",
                f"PSI of the score distribution vs the reference scores. Above {PSI_ALERT_THRESHOLD} (dashed line) "
                "the prediction drift alert fires.",
                [Query(_gauge("berg_monitoring_prediction_psi"), "{{model}} {{version}}")],
                unit="none",
                minimum=0,
                threshold=PSI_ALERT_THRESHOLD,
                no_value=_TOO_FEW_PREDICTIONS,
            ),
            timeseries(
                "Predictions in the drift window",
                "Predictions the drift statistics are computed over (a uniform sample once a day holds more than "
                "the window's capacity); below the minimum the drift gauges are absent.",
                [Query(_gauge("berg_monitoring_drift_window_predictions"), "{{model}} {{version}}")],
                unit="short",
                minimum=0,
            ),
            timeseries(
                "Event time in the drift window",
                "Drift is measured over whole days of the scored events' event time (a part of a day would read the "
                "daily cycle as drift): the window's whole days once it has one, how far the version's predictions "
                "reach before.",
                [Query(_gauge("berg_monitoring_drift_window_seconds"), "{{model}} {{version}}")],
                unit="s",
                minimum=0,
            ),
            stat(
                "Drift window sufficient",
                "Whether the drift window spans a whole day of event time and holds enough predictions to judge "
                "drift; when it does not (a version's first day, the exporter catching up after a restart), the "
                "drift gauges are absent and no drift alert can fire.",
                [Query(f"min({_gauge('berg_monitoring_drift_sufficient')})", "sufficient")],
                unit="none",
                width=12,
                height=8,
                mappings=[(0, "partial day", "orange"), (1, "whole day", "green")],
            ),
        ],
    )


def _quality() -> Row:
    return Row(
        "Live quality",
        [
            timeseries(
                "PR-AUC: live vs reference",
                "PR-AUC of the labelled predictions in the quality window, against the version's PR-AUC at "
                "evaluation (registry metadata).",
                [
                    Query(_gauge("berg_monitoring_quality_pr_auc"), "live {{version}}"),
                    Query(_gauge("berg_monitoring_reference_pr_auc"), "reference {{version}}"),
                ],
                unit="none",
                minimum=0,
                maximum=1,
            ),
            timeseries(
                "PR-AUC drop from reference",
                "Reference PR-AUC minus live PR-AUC, while the quality window holds enough labels. Above "
                f"{PR_AUC_DROP_ALERT_THRESHOLD} (dashed line) ModelQualityDegraded fires.",
                [
                    Query(
                        f"max by (model, version) (berg_monitoring_reference_pr_auc{{{_MODEL_VERSION}}} "
                        f"- on (model, version) berg_monitoring_quality_pr_auc{{{_MODEL_VERSION}}})",
                        "{{model}} {{version}}",
                    )
                ],
                unit="none",
                threshold=PR_AUC_DROP_ALERT_THRESHOLD,
                no_value=_TOO_FEW_LABELS,
            ),
            timeseries(
                "Precision and recall at the threshold",
                "Precision and recall of the quality window at the version's operating threshold.",
                [
                    Query(_gauge("berg_monitoring_quality_precision"), "precision {{version}}"),
                    Query(_gauge("berg_monitoring_quality_recall"), "recall {{version}}"),
                ],
                unit="percentunit",
                minimum=0,
                maximum=1,
                no_value=_TOO_FEW_LABELS,
            ),
            timeseries(
                "Calibration error",
                "Expected calibration error of the quality window (10 equal-width bins): how far scores are from "
                "observed positive rates.",
                [Query(_gauge("berg_monitoring_quality_calibration_error"), "{{version}}")],
                unit="none",
                minimum=0,
                no_value=_TOO_FEW_LABELS,
            ),
            timeseries(
                "Labels in the quality window",
                "Matured predictions (their label final: the card's horizon has passed in event time) the quality "
                "gauges are computed over.",
                [Query(_gauge("berg_monitoring_quality_labels"), "{{version}}")],
                unit="short",
                width=16,
                minimum=0,
            ),
            stat(
                "Quality window sufficient",
                "Whether the quality window holds enough matured predictions (and positives) to judge the model; when "
                "it does not, the quality gauges are absent.",
                [Query(f"min({_gauge('berg_monitoring_quality_sufficient')})", "sufficient")],
                unit="none",
                width=8,
                height=8,
                mappings=[(0, "insufficient", "orange"), (1, "sufficient", "green")],
            ),
        ],
    )


def _business() -> Row:
    return Row(
        "Business",
        [
            timeseries(
                "Amount caught and missed",
                "Amount of the labelled positives (the card's positive class) over the quality window that the "
                "model flagged, and that it let through, in the problem card's currency (the legend's).",
                [
                    Query(_money("berg_monitoring_positive_amount_caught"), "caught {{version}} ({{currency}})"),
                    Query(_money("berg_monitoring_positive_amount_missed"), "missed {{version}} ({{currency}})"),
                ],
                unit=_AMOUNT,
                minimum=0,
            ),
            timeseries(
                "False-positive and expected cost",
                "Cost of the false positives, and the total cost of the window's decisions under the problem card, "
                "in its currency (the legend's).",
                [
                    Query(_money("berg_monitoring_false_positive_cost"), "false positives {{version}} ({{currency}})"),
                    Query(_money("berg_monitoring_expected_cost"), "expected cost {{version}} ({{currency}})"),
                ],
                unit=_AMOUNT,
                minimum=0,
            ),
        ],
    )


def _labels_and_freshness() -> Row:
    return Row(
        "Labels and freshness",
        [
            timeseries(
                "Label coverage",
                "Share of the version's predictions whose label has arrived within the horizon.",
                [Query(_gauge("berg_monitoring_label_coverage_ratio"), "{{version}}")],
                unit="percentunit",
                width=8,
                minimum=0,
                maximum=1,
            ),
            timeseries(
                "Label delay p50 / p95",
                "Label arrival (its event time) minus the scored event's event time.",
                [
                    Query(quantile(0.5, "berg_monitoring_label_delay_seconds", by=["model"], where=_MODEL), "p50"),
                    Query(quantile(0.95, "berg_monitoring_label_delay_seconds", by=["model"], where=_MODEL), "p95"),
                ],
                unit="s",
                width=8,
            ),
            timeseries(
                "New labelled rows vs threshold",
                "Labelled events newer than the production version's training window, and the threshold at "
                "which the data-volume trigger asks for a retraining.",
                [
                    Query(f"max by (model) (berg_monitoring_new_labelled_rows{{{_MODEL}}})", "new rows {{model}}"),
                    Query(
                        f"max by (model) (berg_monitoring_new_labelled_rows_threshold{{{_MODEL}}})",
                        "threshold {{model}}",
                    ),
                ],
                unit="short",
                width=8,
                minimum=0,
            ),
            timeseries(
                "Time since the last event by stream",
                "Wall-clock time since the newest prediction and the newest label arrived: a stream that stops "
                "makes every other panel stale.",
                [
                    Query(
                        f"time() - max by (stream) (berg_monitoring_last_event_timestamp_seconds{{{_MODEL}}})",
                        "{{stream}}",
                    )
                ],
                unit="s",
                width=8,
                minimum=0,
            ),
            timeseries(
                "Predictions and labels consumed /s",
                "Predictions consumed per second by version, and labels by outcome (unmatched: no logged "
                "prediction yet).",
                [
                    Query(
                        rate("berg_monitoring_predictions_total", by=["version"], where=_MODEL_VERSION),
                        "predictions {{version}}",
                    ),
                    Query(rate("berg_monitoring_labels_total", by=["outcome"]), "labels {{outcome}}"),
                ],
                unit="short",
                width=8,
            ),
            timeseries(
                "Statistics age and recompute time",
                "Time since the window statistics were last recomputed, and the p95 time to recompute them.",
                [
                    Query("time() - max(berg_monitoring_statistics_timestamp_seconds)", "age"),
                    Query(quantile(0.95, "berg_monitoring_statistics_duration_seconds"), "recompute p95"),
                ],
                unit="s",
                width=8,
                minimum=0,
            ),
        ],
    )


def _shadow(metric: str, *, by: str = "model, champion_version, shadow_version") -> str:
    return f"max by ({by}) ({metric}{{{_SHADOW_PAIR}}})"


def _shadow_challenger() -> Row:
    """A challenger in its shadow stage against the champion on the same requests (monitoring's shadow
    comparison), and the challengers waiting for a person to approve their promotion (the controller)."""
    return Row(
        "Shadow challenger",
        [
            timeseries(
                "Shadow decision agreement",
                "Share of the shadowed requests (the pair's window) where the shadow would have decided as the "
                "champion did.",
                [Query(_shadow("berg_monitoring_shadow_decision_agreement"), _SHADOW_LEGEND)],
                unit="percentunit",
                width=8,
                minimum=0,
                maximum=1,
                no_value=_NO_SHADOW,
            ),
            timeseries(
                "Shadow decision flips",
                "Shadowed requests of the window where the shadow's decision differs from the champion's.",
                [Query(_shadow("berg_monitoring_shadow_decision_flips"), _SHADOW_LEGEND)],
                unit="short",
                width=8,
                minimum=0,
                no_value=_NO_SHADOW,
            ),
            timeseries(
                "Shadow score PSI vs champion",
                "PSI of the shadow's scores against the champion's on the same requests (the champion as the "
                "reference, binned as prediction drift is); absent below the drift window's minimum of requests.",
                [Query(_shadow("berg_monitoring_shadow_score_psi"), _SHADOW_LEGEND)],
                unit="none",
                width=8,
                minimum=0,
                no_value=_NO_SHADOW,
            ),
            timeseries(
                "PR-AUC: shadow vs champion",
                "PR-AUC of the shadow and of the champion on the same shadowed requests whose label is settled "
                "(as the quality window settles it); absent until those labels are enough and hold both classes.",
                [
                    Query(
                        _shadow("berg_monitoring_shadow_pr_auc", by="model, champion_version, shadow_version, role"),
                        "{{role}} " + _SHADOW_LEGEND,
                    )
                ],
                unit="none",
                width=10,
                minimum=0,
                maximum=1,
                no_value="too few settled labels on the shadowed requests",
            ),
            timeseries(
                "Shadowed requests and settled labels",
                "Shadowed requests in the pair's window, and those whose label is settled (positive within the "
                "card's horizon, or negative past it): what the comparison is computed over.",
                [
                    Query(_shadow("berg_monitoring_shadow_predictions"), "requests " + _SHADOW_LEGEND),
                    Query(_shadow("berg_monitoring_shadow_labelled"), "settled " + _SHADOW_LEGEND),
                ],
                unit="short",
                width=10,
                minimum=0,
                no_value=_NO_SHADOW,
            ),
            stat(
                "Pending approvals",
                "Challengers waiting for a person's approval of their promotion (the controller's count); "
                "'none reported': the controller exports no count for the model.",
                [Query(f"sum(berg_controller_pending_approvals{{{_MODEL}}})", "pending", instant=True)],
                unit="short",
                width=4,
                height=8,
                thresholds=[(1, "orange")],
                no_value="none reported",
            ),
        ],
    )
