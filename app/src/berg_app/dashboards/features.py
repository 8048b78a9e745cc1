"""The features dashboard: the streaming aggregates pushed to Feast and the snapshot views' jobs.

Reads the features service's metrics (``berg_features.metrics``); its Kafka consumer is on the data plane dashboard.
"""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from berg_app.dashboards._common import Query, Row, assemble, increase, quantile, rate, stat, timeseries

__all__ = ["UID", "dashboard"]

UID = "berg-features"


def dashboard() -> Dashboard:
    """Events aggregated, rows pushed, lateness, state size, snapshot job runs and their watermarks."""
    return assemble(
        uid=UID,
        title="Berg / Features",
        description="The features service: streaming aggregates pushed to Feast, and the snapshot views' jobs.",
        tags=["features"],
        rows=[_streaming(), _snapshots()],
    )


def _streaming() -> Row:
    return Row(
        "Streaming aggregates",
        [
            timeseries(
                "Events /s by kind and outcome",
                "Events consumed per second: scored events aggregated, duplicates, late ones, and rows stored in the "
                "label store.",
                [Query(rate("berg_features_events_total", by=["kind", "outcome"]), "{{kind}} {{outcome}}")],
                unit="short",
            ),
            timeseries(
                "Rows pushed /s by store",
                "Feature rows pushed to Feast per second, online and offline.",
                [Query(rate("berg_features_rows_pushed_total", by=["store"]), "{{store}}")],
                unit="short",
            ),
            timeseries(
                "Push duration p95 by store",
                "95th percentile of the time to push one batch to Feast.",
                [Query(quantile(0.95, "berg_features_push_duration_seconds", by=["store"]), "{{store}}")],
                unit="s",
            ),
            timeseries(
                "Lateness p50 / p95",
                "How far (in event time) scored events arrive behind their entity's latest one.",
                [
                    Query(quantile(0.5, "berg_features_lateness_seconds"), "p50"),
                    Query(quantile(0.95, "berg_features_lateness_seconds"), "p95"),
                ],
                unit="s",
            ),
            stat(
                "Users in state",
                "Users whose aggregates the service holds in memory.",
                [Query("sum(berg_features_users_in_state)", "users")],
                unit="short",
                width=12,
            ),
            timeseries(
                "Events restored from the label store",
                "Transactions read back from the label store to rebuild state (after a restart or a rebalance).",
                [Query(increase("berg_features_restored_events_total"), "restored")],
                unit="short",
                height=4,
                bars=True,
            ),
        ],
    )


def _snapshots() -> Row:
    return Row(
        "Snapshot jobs",
        [
            timeseries(
                "Snapshot runs by view and outcome",
                "Snapshot job runs per interval, per snapshot view, ok or failed.",
                [Query(increase("berg_features_snapshot_runs_total", by=["view", "outcome"]), "{{view}} {{outcome}}")],
                unit="short",
                width=8,
                bars=True,
            ),
            timeseries(
                "Snapshot run duration p95 by view",
                "95th percentile of the time of one snapshot job run, per snapshot view.",
                [Query(quantile(0.95, "berg_features_snapshot_duration_seconds", by=["view"]), "{{view}}")],
                unit="s",
                width=8,
            ),
            timeseries(
                "Snapshot watermark age by view",
                "Wall-clock time minus the event time up to which each view's snapshots are materialized. "
                "It grows between runs and with the gap between event time and now.",
                [Query("time() - max by (view) (berg_features_snapshot_watermark_timestamp_seconds)", "{{view}}")],
                unit="s",
                width=8,
            ),
        ],
    )
