"""The data plane dashboard: the Kafka consumers of ingestion, validation and features, and their own metrics.

Reads the consumer loop's metrics (``berg.kafka.consumer``), the dead letters (``berg.service``),
ingestion's (``berg_ingestion.handler``) and validation's (``berg_validation.handler``, ``history``).
"""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from berg_app.dashboards._common import Query, Row, assemble, increase, label_variable, quantile, rate, timeseries

__all__ = ["UID", "dashboard"]

UID = "berg-data-plane"

_SERVICE = 'service=~"$service"'
_FAILED = 'outcome="failed"'


def dashboard() -> Dashboard:
    """Records in and out of each consumer, lag, dead letters, batch times, landing and validation outcomes."""
    return assemble(
        uid=UID,
        title="Berg / Data plane",
        description="Kafka consumers (ingestion, validation, features): throughput, lag, dead letters, validation.",
        tags=["data-plane"],
        variables=[
            label_variable(
                "service", "Service", "berg_consumer_records_total", description="The consuming services shown."
            )
        ],
        rows=[_consumers(), _ingestion(), _validation()],
    )


def _consumers() -> Row:
    return Row(
        "Kafka consumers",
        [
            timeseries(
                "Records consumed /s by service and topic",
                "Records polled from Kafka per second, by consuming service and topic.",
                [
                    Query(
                        rate("berg_consumer_records_total", by=["service", "topic"], where=_SERVICE),
                        "{{service}} {{topic}}",
                    )
                ],
                unit="short",
            ),
            timeseries(
                "Consumer lag by service and topic",
                "Records between each consumer's position and the end of its partitions (summed over partitions). "
                "A lag that keeps growing means the service cannot keep up.",
                [Query(f"sum by (service, topic) (berg_consumer_lag_records{{{_SERVICE}}})", "{{service}} {{topic}}")],
                unit="short",
                minimum=0,
            ),
            timeseries(
                "Dead letters /s by service and reason",
                "Records sent to berg.dlq per second, by the service that refused them and why.",
                [
                    Query(
                        rate("berg_dead_letters_total", by=["service", "reason"], where=_SERVICE),
                        "{{service}} {{reason}}",
                    )
                ],
                unit="short",
            ),
            timeseries(
                "Batch duration p95 by service",
                "95th percentile of the time from poll to commit of one batch.",
                [
                    Query(
                        quantile(0.95, "berg_consumer_batch_duration_seconds", by=["service"], where=_SERVICE),
                        "{{service}}",
                    )
                ],
                unit="s",
            ),
            timeseries(
                "Batches /s by service and outcome",
                "Turns of each consumer loop per second: committed, empty polls, failed commits, failed handlers.",
                [
                    Query(
                        rate("berg_consumer_batches_total", by=["service", "outcome"], where=_SERVICE),
                        "{{service}} {{outcome}}",
                    )
                ],
                unit="short",
                width=24,
            ),
        ],
    )


def _ingestion() -> Row:
    return Row(
        "Ingestion",
        [
            timeseries(
                "Ingestion: published /s by topic",
                "Events published downstream (to the raw-valid topics) per second.",
                [Query(rate("berg_ingestion_published_total", by=["topic"]), "{{topic}}")],
                unit="short",
                width=8,
            ),
            timeseries(
                "Ingestion: landed and duplicates /s by kind",
                "Events newly written to the landing zone, and redelivered events it already held.",
                [
                    Query(rate("berg_ingestion_landed_total", by=["kind"]), "landed {{kind}}"),
                    Query(rate("berg_ingestion_duplicates_total", by=["kind"]), "duplicate {{kind}}"),
                ],
                unit="short",
                width=8,
            ),
            timeseries(
                "Ingestion: stage duration p95",
                "95th percentile of the time per batch in each stage (land, publish).",
                [Query(quantile(0.95, "berg_ingestion_stage_duration_seconds", by=["stage"]), "{{stage}}")],
                unit="s",
                width=8,
            ),
        ],
    )


def _validation() -> Row:
    return Row(
        "Validation",
        [
            timeseries(
                "Validation: rows /s by kind and outcome",
                "Rows validated per second: passed, failed (dead-lettered), quarantined (whole batch held back), "
                "redelivered.",
                [Query(rate("berg_validation_rows_total", by=["kind", "outcome"]), "{{kind}} {{outcome}}")],
                unit="short",
            ),
            timeseries(
                "Validation: failed row share by kind",
                "Share of validated rows that failed a row-level expectation.",
                [
                    Query(
                        f"{rate('berg_validation_rows_total', by=['kind'], where=_FAILED)} "
                        f"/ {rate('berg_validation_rows_total', by=['kind'])}",
                        "{{kind}}",
                    )
                ],
                unit="percentunit",
                minimum=0,
            ),
            timeseries(
                "Validation: expectation failures /s",
                "Rows failing each row-level expectation per second (1 per batch for batch-level expectations).",
                [
                    Query(
                        rate("berg_validation_expectation_failures_total", by=["kind", "expectation"]),
                        "{{kind}} {{expectation}}",
                    )
                ],
                unit="short",
            ),
            timeseries(
                "Validation: quarantined batches",
                "Micro-batches held back whole, per interval.",
                [Query(increase("berg_validation_batches_quarantined_total", by=["kind"]), "{{kind}}")],
                unit="short",
                bars=True,
            ),
            timeseries(
                "Validation: duration p95 by kind",
                "95th percentile of the time to validate one micro-batch of one kind.",
                [Query(quantile(0.95, "berg_validation_duration_seconds", by=["kind"]), "{{kind}}")],
                unit="s",
            ),
            timeseries(
                "Validation: Data Docs failures",
                "Data Docs operations that failed per interval (validation goes on without its history).",
                [Query(increase("berg_validation_data_docs_failures_total"), "failures")],
                unit="short",
                bars=True,
            ),
        ],
    )
