"""The features service's own metrics.

What is per view carries a ``view`` label: each streaming view's pushes, lateness and state, and each snapshot
view's job. ``berg_features_events_total`` counts scored events, which every streaming view takes or none does.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["FeaturesMetrics", "SnapshotJobMetrics", "StreamingViewMetrics"]


@dataclass(frozen=True)
class StreamingViewMetrics:
    """One streaming view's series of the stream metrics (:meth:`FeaturesMetrics.streaming_view`)."""

    rows_pushed_offline: Counter
    rows_pushed_online: Counter
    push_seconds_offline: Histogram
    push_seconds_online: Histogram
    lateness_seconds: Histogram
    entities_in_state: Gauge
    restored_events: Counter
    history_reads: Counter
    entities_evicted: Counter


@dataclass(frozen=True)
class SnapshotJobMetrics:
    """One snapshot view's series of the job metrics (:meth:`FeaturesMetrics.snapshot_job`)."""

    runs_ok: Counter
    runs_failed: Counter
    seconds: Histogram
    watermark: Gauge
    pending_days: Gauge
    run_started: Gauge
    next_due: Gauge


@dataclass(frozen=True)
class FeaturesMetrics:
    events: Counter
    rows_pushed: Counter
    push_seconds: Histogram
    lateness_seconds: Histogram
    users_in_state: Gauge
    restored_events: Counter
    history_reads: Counter
    users_evicted: Counter
    snapshot_runs: Counter
    snapshot_seconds: Histogram
    snapshot_watermark: Gauge
    snapshot_pending_days: Gauge
    snapshot_run_started: Gauge
    snapshot_next_due: Gauge
    label_store_written: Gauge

    def streaming_view(self, view: str) -> StreamingViewMetrics:
        """The series of streaming view ``view``, created at 0 so they are exported before its first event."""
        return StreamingViewMetrics(
            rows_pushed_offline=self.rows_pushed.labels(view, "offline"),
            rows_pushed_online=self.rows_pushed.labels(view, "online"),
            push_seconds_offline=self.push_seconds.labels(view, "offline"),
            push_seconds_online=self.push_seconds.labels(view, "online"),
            lateness_seconds=self.lateness_seconds.labels(view),
            entities_in_state=self.users_in_state.labels(view),
            restored_events=self.restored_events.labels(view),
            history_reads=self.history_reads.labels(view),
            entities_evicted=self.users_evicted.labels(view),
        )

    def snapshot_job(self, view: str) -> SnapshotJobMetrics:
        """The series of the job computing snapshot view ``view``, created at 0 so they are exported before its
        first run."""
        return SnapshotJobMetrics(
            runs_ok=self.snapshot_runs.labels(view, "ok"),
            runs_failed=self.snapshot_runs.labels(view, "failed"),
            seconds=self.snapshot_seconds.labels(view),
            watermark=self.snapshot_watermark.labels(view),
            pending_days=self.snapshot_pending_days.labels(view),
            run_started=self.snapshot_run_started.labels(view),
            next_due=self.snapshot_next_due.labels(view),
        )

    @classmethod
    def register(cls, registry: CollectorRegistry) -> FeaturesMetrics:
        return cls(
            events=Counter(
                "berg_features_events",
                "Events consumed, by kind and outcome (aggregated, duplicate, late, stored).",
                ["kind", "outcome"],
                registry=registry,
            ),
            rows_pushed=Counter(
                "berg_features_rows_pushed",
                "Feature rows pushed to Feast, by streaming view and store (online, offline).",
                ["view", "store"],
                registry=registry,
            ),
            push_seconds=Histogram(
                "berg_features_push_duration_seconds",
                "Time to push one batch of a streaming view's rows to Feast, by view and store.",
                ["view", "store"],
                registry=registry,
            ),
            lateness_seconds=Histogram(
                "berg_features_lateness_seconds",
                "How far (event time) scored events arrive behind their entity's latest, by streaming view.",
                ["view"],
                buckets=(0, 1, 10, 60, 300, 900, 3600, 4 * 3600, 86400),
                registry=registry,
            ),
            # The entity metrics keep the names they had when the service computed one user view: dashboards query them.
            users_in_state=Gauge(
                "berg_features_users_in_state",
                "Entities whose aggregates are held, by streaming view.",
                ["view"],
                registry=registry,
            ),
            restored_events=Counter(
                "berg_features_restored_events",
                "Scored events read back from the label store to rebuild a streaming view's state, by view.",
                ["view"],
                registry=registry,
            ),
            history_reads=Counter(
                "berg_features_history_reads",
                "Reads of the label store for entities whose history was evicted or not restored, by streaming view.",
                ["view"],
                registry=registry,
            ),
            users_evicted=Counter(
                "berg_features_users_evicted",
                "Idle entities whose aggregates were dropped from memory (their events are stored), by streaming view.",
                ["view"],
                registry=registry,
            ),
            snapshot_runs=Counter(
                "berg_features_snapshot_runs",
                "Snapshot job runs, by snapshot view and outcome.",
                ["view", "outcome"],
                registry=registry,
            ),
            snapshot_seconds=Histogram(
                "berg_features_snapshot_duration_seconds",
                "Time of one snapshot job run, by snapshot view.",
                ["view"],
                registry=registry,
            ),
            snapshot_watermark=Gauge(
                "berg_features_snapshot_watermark_timestamp_seconds",
                "Event time up to which the view's snapshots are computed and materialized.",
                ["view"],
                registry=registry,
            ),
            snapshot_pending_days=Gauge(
                "berg_features_snapshot_pending_days",
                "Days of the view's snapshots whose inputs changed and that are not recomputed yet.",
                ["view"],
                registry=registry,
            ),
            snapshot_run_started=Gauge(
                "berg_features_snapshot_run_started_timestamp_seconds",
                "Wall-clock start of the view's last snapshot run that succeeded: it read every label store write "
                "before.",
                ["view"],
                registry=registry,
            ),
            snapshot_next_due=Gauge(
                "berg_features_snapshot_next_due_timestamp_seconds",
                "Event time every source partition must reach before the view's next snapshot can be computed "
                "(its boundary plus the lateness): no snapshot becomes available before it.",
                ["view"],
                registry=registry,
            ),
            label_store_written=Gauge(
                "berg_features_label_store_written_timestamp_seconds",
                "Wall-clock end of this instance's last write of scored events or labels to the label store.",
                registry=registry,
            ),
        )
