"""The serving dashboard: inference traffic, latency per stage, scores and decisions, the model being served.

Reads the serving metrics of ``docs/metrics.md`` (``berg_serving_*``, defined in ``berg_serving.metrics``).
"""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from berg_app.dashboards._common import (
    Query,
    Row,
    assemble,
    heatmap,
    increase,
    quantile,
    rate,
    stat,
    table,
    timeseries,
)

__all__ = ["ERROR_RATIO_ALERT_THRESHOLD", "LATENCY_P99_ALERT_THRESHOLD_S", "UID", "dashboard"]

UID = "berg-serving"

ERROR_RATIO_ALERT_THRESHOLD = 0.01
"""Share of server errors above which ServingErrorRateHigh fires (``berg.rules.yml``)."""

LATENCY_P99_ALERT_THRESHOLD_S = 0.25
"""p99 of the total stage above which ServingLatencyHigh fires (``berg.rules.yml``)."""

_STAGES = ("total", "lookup", "predict")
"""``total``: the whole inference call; ``lookup``: validation, Feast and on-demand features; ``predict``: the model."""

_REQUESTS = "berg_serving_requests_total"


def dashboard() -> Dashboard:
    """Requests, errors, latency, scores, decisions, the served version and the prediction log."""
    return assemble(
        uid=UID,
        title="Berg / Serving",
        description="The model's inference service: traffic, errors, latency per stage, scores and the "
        "version it serves.",
        tags=["serving"],
        rows=[_traffic(), _latency(), _scores(), _model(), _prediction_log()],
    )


def _error_ratio(outcome: str) -> str:
    errors = rate(_REQUESTS, where=f'outcome="{outcome}"')
    return f"{errors} / {rate(_REQUESTS)}"


def _traffic() -> Row:
    return Row(
        "Traffic",
        [
            timeseries(
                "Requests /s by outcome and protocol",
                "Inference calls answered per second, by protocol (v1, v2, grpc) and outcome.",
                [Query(rate(_REQUESTS, by=["protocol", "outcome"]), "{{protocol}} {{outcome}}")],
                unit="reqps",
                width=10,
            ),
            timeseries(
                "Error ratio",
                "Share of inference calls answered with a server error (the service failed) or a client error "
                f"(the request was invalid). Above {ERROR_RATIO_ALERT_THRESHOLD:.0%} server errors (dashed line) "
                "ServingErrorRateHigh fires.",
                [
                    Query(_error_ratio("server_error"), "server errors"),
                    Query(_error_ratio("client_error"), "client errors"),
                ],
                unit="percentunit",
                width=10,
                minimum=0,
                threshold=ERROR_RATIO_ALERT_THRESHOLD,
            ),
            stat(
                "In flight",
                "Inference calls being processed now.",
                [Query("sum(berg_serving_requests_in_flight)", "in flight")],
                unit="short",
                width=4,
                height=8,
            ),
        ],
    )


def _latency() -> Row:
    return Row(
        "Latency",
        [
            timeseries(
                f"Latency: {stage}",
                f"p50, p95 and p99 of the {stage} stage."
                + (
                    f" Above {LATENCY_P99_ALERT_THRESHOLD_S} s at p99 (dashed line) ServingLatencyHigh fires."
                    if stage == "total"
                    else ""
                ),
                [
                    Query(quantile(q, "berg_serving_latency_seconds", where=f'stage="{stage}"'), f"p{round(q * 100)}")
                    for q in (0.5, 0.95, 0.99)
                ],
                unit="s",
                width=8,
                threshold=LATENCY_P99_ALERT_THRESHOLD_S if stage == "total" else None,
            )
            for stage in _STAGES
        ],
    )


def _scores() -> Row:
    return Row(
        "Scores and decisions",
        [
            heatmap(
                "Score distribution",
                "Scores served per interval, in buckets of 0.05. A shift here is what prediction drift measures.",
                Query(increase("berg_serving_score_bucket", by=["le"]), "{{le}}"),
                unit="short",
            ),
            timeseries(
                "Score quantiles",
                "Median, p90 and p99 of the scores served.",
                [Query(quantile(q, "berg_serving_score"), f"p{round(q * 100)}") for q in (0.5, 0.9, 0.99)],
                unit="short",
                minimum=0,
                maximum=1,
            ),
            timeseries(
                "Predictions /s by decision",
                "Transactions scored per second, by the decision taken at the version's threshold.",
                [Query(rate("berg_serving_predictions_total", by=["decision"]), "{{decision}}")],
                unit="short",
            ),
            timeseries(
                "Scored with default features /s by entity",
                "Transactions scored with default features because an entity was unknown to the online store or stale.",
                [Query(rate("berg_serving_default_features_total", by=["entity"]), "{{entity}}")],
                unit="short",
            ),
        ],
    )


def _model() -> Row:
    return Row(
        "Model",
        [
            table(
                "Model version served",
                "The model, version and decision threshold each serving replica has loaded.",
                [
                    Query(
                        "max by (instance, model, version, threshold) (berg_serving_model_info)",
                        instant=True,
                        table=True,
                    )
                ],
                width=12,
            ),
            stat(
                "Versions served",
                "Distinct versions served across replicas: more than 1 while a swap rolls out.",
                [Query("count(count by (version) (berg_serving_model_info))", "versions", instant=True)],
                unit="short",
                width=4,
                height=8,
                thresholds=[(2, "orange")],
            ),
            timeseries(
                "Model swaps and load failures",
                "Versions swapped in (the first load included) and versions that failed to load or warm up "
                "(the previous one stays), per interval.",
                [
                    Query(increase("berg_serving_model_swaps_total"), "swaps"),
                    Query(increase("berg_serving_model_load_failures_total"), "load failures"),
                ],
                unit="short",
                width=8,
                bars=True,
            ),
        ],
    )


def _prediction_log() -> Row:
    return Row(
        "Prediction log",
        [
            timeseries(
                "Prediction log: sent and dropped /s",
                "Predictions acknowledged by Kafka, and predictions not logged by reason (queue_full: Kafka too "
                "slow or down; send_failed; invalid). Dropped predictions are missing from monitoring.",
                [
                    Query(rate("berg_serving_prediction_log_sent_total"), "sent"),
                    Query(rate("berg_serving_prediction_log_dropped_total", by=["reason"]), "dropped {{reason}}"),
                ],
                unit="short",
            ),
            timeseries(
                "Prediction log: queued",
                "Predictions waiting for the Kafka producer.",
                [Query("sum(berg_serving_prediction_log_queued)", "queued")],
                unit="short",
                minimum=0,
            ),
        ],
    )
