"""The features service's own metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["FeaturesMetrics"]


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
    merchant_runs: Counter
    merchant_seconds: Histogram
    merchant_watermark: Gauge
    merchant_pending_days: Gauge
    merchant_run_started: Gauge
    merchant_next_due: Gauge
    label_store_written: Gauge

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
                "Feature rows pushed to Feast, by store (online, offline).",
                ["store"],
                registry=registry,
            ),
            push_seconds=Histogram(
                "berg_features_push_duration_seconds", "Time to push one batch to Feast.", ["store"], registry=registry
            ),
            lateness_seconds=Histogram(
                "berg_features_lateness_seconds",
                "How far (event time) transactions arrive behind their user's latest.",
                buckets=(0, 1, 10, 60, 300, 900, 3600, 4 * 3600, 86400),
                registry=registry,
            ),
            users_in_state=Gauge("berg_features_users_in_state", "Users whose aggregates are held.", registry=registry),
            restored_events=Counter(
                "berg_features_restored_events",
                "Transactions read back from the label store to rebuild state.",
                registry=registry,
            ),
            history_reads=Counter(
                "berg_features_history_reads",
                "Reads of the label store for users whose history was evicted or not restored.",
                registry=registry,
            ),
            users_evicted=Counter(
                "berg_features_users_evicted",
                "Idle users whose aggregates were dropped from memory (their transactions are stored).",
                registry=registry,
            ),
            merchant_runs=Counter(
                "berg_features_merchant_runs", "Merchant snapshot runs, by outcome.", ["outcome"], registry=registry
            ),
            merchant_seconds=Histogram(
                "berg_features_merchant_duration_seconds", "Time of one merchant snapshot run.", registry=registry
            ),
            merchant_watermark=Gauge(
                "berg_features_merchant_watermark_timestamp_seconds",
                "Event time up to which merchant snapshots are computed and materialized.",
                registry=registry,
            ),
            merchant_pending_days=Gauge(
                "berg_features_merchant_pending_days",
                "Days of merchant snapshots whose inputs changed and that are not recomputed yet.",
                registry=registry,
            ),
            merchant_run_started=Gauge(
                "berg_features_merchant_run_started_timestamp_seconds",
                "Wall-clock start of the last merchant run that succeeded: it read every label store write before.",
                registry=registry,
            ),
            merchant_next_due=Gauge(
                "berg_features_merchant_next_due_timestamp_seconds",
                "Event time every source partition must reach before the next merchant snapshot can be computed "
                "(its boundary plus the lateness): no snapshot becomes available before it.",
                registry=registry,
            ),
            label_store_written=Gauge(
                "berg_features_label_store_written_timestamp_seconds",
                "Wall-clock end of this instance's last write of transactions or labels to the label store.",
                registry=registry,
            ),
        )
