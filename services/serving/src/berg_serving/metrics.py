"""The serving service's Prometheus metrics, on the service's own registry.

With more than one worker (``BERG_SERVING_WORKERS``) prometheus_client runs in multiprocess mode: each worker
writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` serves :func:`workers_registry`,
which adds them up. Gauges say how (``multiprocess_mode``), and the model's ``Info``, which that mode cannot
hold, becomes :class:`ModelInfoGauge` under the same sample name and labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = [
    "STAGES",
    "ModelInfo",
    "ModelInfoGauge",
    "ServingMetrics",
    "WatchMetrics",
    "outcome_of",
    "request_counter",
    "workers_registry",
]

_PREFIX = "berg_serving_"
_MODEL_INFO = "berg_serving_model_info"
_SHADOW_MODEL_INFO = "berg_serving_shadow_model_info"

STAGES = ("lookup", "predict", "total")
"""``lookup``: validation, Feast and the on-demand features; ``predict``: the model (or the hop to the
predictor); ``total``: the whole inference call, errors included."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SCORE_BUCKETS = tuple(round(0.05 * step, 2) for step in range(1, 21))


class ModelInfo(Protocol):
    """What the champion watcher reports a swap to: :class:`prometheus_client.Info` or :class:`ModelInfoGauge`."""

    def info(self, val: dict[str, str]) -> None: ...


class _Counting(Protocol):
    def inc(self, amount: float = 1) -> None: ...


@dataclass(frozen=True)
class WatchMetrics:
    """What a model watcher reports: swaps, versions it could not load (integrity failures apart too), the version."""

    swaps: _Counting
    load_failures: _Counting
    integrity_failures: _Counting
    model: ModelInfo


class ModelInfoGauge:
    """``berg_serving_model_info{model, version, threshold} 1`` as a gauge, for multiprocess mode.

    prometheus_client's ``Info`` does not work across processes; a gauge of the same name exposes the same sample
    (an ``Info`` is a gauge named ``<name>_info`` in the text format), plus the ``pid`` label of each worker
    (``liveall``: a dead worker's series goes with it). A label set can't be removed in multiprocess mode, so the
    version swapped out is set to 0 and :func:`workers_registry` leaves its 0 out.
    """

    def __init__(
        self, registry: CollectorRegistry, name: str = _MODEL_INFO, documentation: str = "The model version served."
    ) -> None:
        self._gauge = Gauge(
            name,
            documentation,
            ["model", "version", "threshold"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self._current: dict[str, str] | None = None

    def info(self, val: dict[str, str]) -> None:
        """Report ``val`` (model, version, threshold) as the version served, instead of the previous one."""
        if self._current is not None and self._current != val:
            self._gauge.labels(**self._current).set(0)
        self._gauge.labels(**val).set(1)
        self._current = dict(val)


@dataclass(frozen=True)
class ServingMetrics:
    """Every metric the serving models and the prediction log update."""

    latency: Histogram
    scores: Histogram
    predictions: Counter
    default_features: Counter
    in_flight: Gauge
    model: ModelInfo
    swaps: Counter
    load_failures: Counter
    integrity_failures: Counter
    log_sent: Counter
    log_dropped: Counter
    log_queued: Gauge
    shadow_model: ModelInfo
    shadow_swaps: Counter
    shadow_predictions: Counter
    shadow_failures: Counter
    shadow_dropped: Counter
    shadow_queue_rows: Gauge

    @property
    def champion_watch(self) -> WatchMetrics:
        """What the champion's watcher reports to."""
        return WatchMetrics(self.swaps, self.load_failures, self.integrity_failures, self.model)

    @property
    def shadow_watch(self) -> WatchMetrics:
        """What the shadow's watcher reports to: a shadow that cannot be loaded is a shadow failure."""
        return WatchMetrics(
            self.shadow_swaps,
            self.shadow_failures.labels("load"),
            self.shadow_failures.labels("integrity"),
            self.shadow_model,
        )

    @classmethod
    def register(cls, registry: CollectorRegistry, *, multiprocess: bool = False) -> ServingMetrics:
        """Create the metrics on ``registry`` (once per registry); ``multiprocess``: one of several workers."""
        model: ModelInfo = (
            ModelInfoGauge(registry)
            if multiprocess
            else Info("berg_serving_model", "The model version being served.", registry=registry)
        )
        shadow_about = "The shadow challenger's version (version empty: no shadow)."
        shadow_model: ModelInfo = (
            ModelInfoGauge(registry, _SHADOW_MODEL_INFO, shadow_about)
            if multiprocess
            else Info("berg_serving_shadow_model", shadow_about, registry=registry)
        )
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
                "berg_serving_requests_in_flight",
                "Inference calls being processed now.",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            model=model,
            swaps=Counter(
                "berg_serving_model_swaps", "Model versions swapped in (the first load included).", registry=registry
            ),
            load_failures=Counter(
                "berg_serving_model_load_failures",
                "Model versions that could not be loaded or warmed up (the previous one stays).",
                registry=registry,
            ),
            integrity_failures=Counter(
                "berg_serving_model_integrity_failures",
                "Model versions refused because their model file is missing or differs from the size and sha256 "
                "recorded at registration (changed after registration); counted in load failures too.",
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
                "berg_serving_prediction_log_queued",
                "Predictions waiting for the producer.",
                registry=registry,
                multiprocess_mode="livesum",
            ),
            shadow_model=shadow_model,
            shadow_swaps=Counter(
                "berg_serving_shadow_swaps",
                "Shadow versions swapped in, and the shadow cleared.",
                registry=registry,
            ),
            shadow_predictions=Counter(
                "berg_serving_shadow_predictions",
                "Shadow predictions acknowledged by Kafka (predictions.shadow).",
                registry=registry,
            ),
            shadow_failures=Counter(
                "berg_serving_shadow_failures",
                "Shadow failures, by reason: score (the shadow raised; rows), invalid (a record that does not fit "
                "ShadowPredictionV1), send (Kafka refused it), load and integrity (a version that cannot be served).",
                ["reason"],
                registry=registry,
            ),
            shadow_dropped=Counter(
                "berg_serving_shadow_dropped",
                "Sampled rows the shadow never scored, by reason: queue_full (the shadow is too slow), cleared "
                "(the alias was cleared meanwhile), shutdown.",
                ["reason"],
                registry=registry,
            ),
            shadow_queue_rows=Gauge(
                "berg_serving_shadow_queue_rows",
                "Sampled rows waiting for the shadow.",
                registry=registry,
                multiprocess_mode="livesum",
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


class _WorkersCollector(Collector):
    """Every worker's ``berg_serving_*`` metrics from the multiprocess files, added up as each metric says.

    Only ``berg_serving_*``: in multiprocess mode the libraries' own metrics (Feast's, KServe's, made on
    prometheus_client's global registry) land in the same files, and a single process does not serve them either.
    """

    def __init__(self, path: str | None) -> None:
        self._files = MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]  # unannotated upstream

    def collect(self) -> Iterable[Metric]:
        for family in self._files.collect():  # type: ignore[no-untyped-call]  # unannotated upstream
            if not family.name.startswith(_PREFIX):
                continue
            if family.name in (_MODEL_INFO, _SHADOW_MODEL_INFO):
                family.samples = [sample for sample in family.samples if sample.value != 0]
            yield family


def workers_registry(path: str | None = None) -> CollectorRegistry:
    """A registry serving the sum of every worker's metrics, read from ``path`` (default:
    ``PROMETHEUS_MULTIPROC_DIR``) at each scrape; see :class:`ModelInfoGauge` for the model's version."""
    registry = CollectorRegistry()
    registry.register(_WorkersCollector(path))
    return registry
