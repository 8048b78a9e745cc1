"""The retraining dashboard: what the controller was asked, what it decided, its pipeline runs and promotions.

Reads the retraining controller's metrics (``berg_controller_*`` in ``docs/metrics.md``) and, for context, the
data-volume trigger's gauges from monitoring.
"""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from berg_app.dashboards._common import Query, Row, assemble, increase, label_variable, stat, timeseries

__all__ = ["UID", "dashboard"]

UID = "berg-retraining"

_MODEL = 'model=~"$model"'


def dashboard() -> Dashboard:
    """Alerts received, triggers by source and decision, runs, active runs and time since the last promotion."""
    return assemble(
        uid=UID,
        title="Berg / Retraining",
        description="The retraining controller: alerts and schedules that trigger it, the policy's decisions, "
        "pipeline runs and promotions.",
        tags=["retraining"],
        variables=[
            label_variable("model", "Model", "berg_controller_triggers_total", description="Registry model name.")
        ],
        rows=[_now(), _triggers(), _runs()],
    )


def _now() -> Row:
    return Row(
        "Now",
        [
            stat(
                "Active runs",
                "Retraining pipeline runs in progress (at most one per model).",
                [Query(f"sum by (model) (berg_controller_active_runs{{{_MODEL}}})", "{{model}}")],
                unit="short",
                width=8,
            ),
            stat(
                "Time since the last promotion",
                "Time since production last moved to a new version.",
                [
                    Query(
                        f"time() - max by (model) (berg_controller_last_promotion_timestamp_seconds{{{_MODEL}}})",
                        "{{model}}",
                    )
                ],
                unit="s",
                width=8,
                no_value="never promoted",
            ),
            stat(
                "Runs finished in the time range",
                "Pipeline runs that finished within the dashboard's time range, by status.",
                [
                    Query(
                        increase("berg_controller_runs_total", by=["status"], where=_MODEL, window="$__range"),
                        "{{status}}",
                        instant=True,
                    )
                ],
                unit="short",
                width=8,
                no_value="0",
            ),
        ],
    )


def _triggers() -> Row:
    return Row(
        "Triggers",
        [
            timeseries(
                "Alerts received by status",
                "Alerts in the webhook payloads Alertmanager sent the controller, firing or resolved, per interval.",
                [Query(increase("berg_controller_alerts_received_total", by=["status"]), "{{status}}")],
                unit="short",
                bars=True,
            ),
            timeseries(
                "Triggers by source and decision",
                "Triggers per interval (alert, schedule, data volume, manual) and what the policy decided "
                "(started, cooldown, active_run, ignored, not_production).",
                [
                    Query(
                        increase("berg_controller_triggers_total", by=["source", "decision"], where=_MODEL),
                        "{{source}} {{decision}}",
                    )
                ],
                unit="short",
                bars=True,
            ),
            timeseries(
                "Data-volume trigger: new labelled rows vs threshold",
                "Labelled events newer than the production version's training window; at the threshold the "
                "data-volume trigger fires.",
                [
                    Query(f"max by (model) (berg_monitoring_new_labelled_rows{{{_MODEL}}})", "new rows {{model}}"),
                    Query(
                        f"max by (model) (berg_monitoring_new_labelled_rows_threshold{{{_MODEL}}})",
                        "threshold {{model}}",
                    ),
                ],
                unit="short",
                width=24,
                minimum=0,
            ),
        ],
    )


def _runs() -> Row:
    return Row(
        "Runs",
        [
            timeseries(
                "Runs finished by status",
                "Retraining pipeline runs that finished per interval, succeeded or failed.",
                [
                    Query(
                        increase("berg_controller_runs_total", by=["model", "status"], where=_MODEL),
                        "{{model}} {{status}}",
                    )
                ],
                unit="short",
                bars=True,
            ),
            timeseries(
                "Active runs over time",
                "Runs in progress: 1 while a retraining pipeline runs.",
                [Query(f"sum by (model) (berg_controller_active_runs{{{_MODEL}}})", "{{model}}")],
                unit="short",
                minimum=0,
            ),
        ],
    )
