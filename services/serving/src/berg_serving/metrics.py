"""The serving service's Prometheus metrics, on the service's own registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

__all__ = ["STAGES", "ServingMetrics", "outcome_of", "request_counter"]

STAGES = ("lookup", "predict", "total")
"""``lookup``: validation, Feast and the on-demand features; ``predict``: the model (or the hop to the
predictor); ``total``: the whole inference call, errors included."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SCORE_BUCKETS = tuple(round(0.05 * step, 2) for step in range(1, 21))


@dataclass(frozen=True)
class ServingMetrics:
    """Every metric the serving models and the prediction log update."""

    latency: Histogram
    scores: Histogram
    predictions: Counter
    default_features: Counter
    in_flight: Gauge
    model: Info
    swaps: Counter
    load_failures: Counter
    log_sent: Counter
    log_dropped: Counter
    log_queued: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> ServingMetrics:
        """Create the metrics on ``registry`` (once per registry)."""
        return cls(
            latency=Histogram(
                "berg_serving_latency_seconds",
                "Time per inference stage: lookup (Feast and on-demand), predict (the model or the hop to it), "
                "explain (scores and contributions), total.",
                ["stage"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            scores=Histogram("berg_serving_score", "Scores served.", buckets=_SCORE_BUCKETS, registry=registry),
            predictions=Counter(
                "berg_serving_predictions", "Events scored, by decision.", ["decision"], registry=registry
            ),
            default_features=Counter(
                "berg_serving_default_features",
                "Events scored with default (missing) features, by the entity that was unknown or stale.",
                ["entity"],
                registry=registry,
            ),
            in_flight=Gauge(
                "berg_serving_requests_in_flight", "Inference calls being processed now.", registry=registry
            ),
            model=Info("berg_serving_model", "The model version being served.", registry=registry),
            swaps=Counter(
                "berg_serving_model_swaps", "Model versions swapped in (the first load included).", registry=registry
            ),
            load_failures=Counter(
                "berg_serving_model_load_failures",
                "Model versions that could not be loaded or warmed up (the previous one stays).",
                registry=registry,
            ),
            log_sent=Counter(
                "berg_serving_prediction_log_sent", "Predictions acknowledged by Kafka.", registry=registry
            ),
            log_dropped=Counter(
                "berg_serving_prediction_log_dropped",
                "Predictions not logged, by reason: queue_full (Kafka too slow or down), send_failed, invalid.",
                ["reason"],
                registry=registry,
            ),
            log_queued=Gauge(
                "berg_serving_prediction_log_queued", "Predictions waiting for the producer.", registry=registry
            ),
        )


def request_counter(registry: CollectorRegistry) -> Counter:
    """``berg_serving_requests_total{protocol, outcome}``: inference calls answered, the error-rate alert's input.

    ``protocol`` is ``v1``, ``v2`` (REST) or ``grpc``; ``outcome`` is :func:`outcome_of` the status.
    """
    return Counter(
        "berg_serving_requests",
        "Inference calls answered, by protocol (v1, v2, grpc) and outcome (ok, client_error, server_error).",
        ["protocol", "outcome"],
        registry=registry,
    )


def outcome_of(http_status: int) -> str:
    """``ok`` (2xx, 3xx), ``client_error`` (4xx) or ``server_error`` (5xx: ours, or the predictor's)."""
    if http_status >= 500:
        return "server_error"
    return "client_error" if http_status >= 400 else "ok"
