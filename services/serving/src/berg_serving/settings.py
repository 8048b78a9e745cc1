"""Settings of the serving service (``BERG_SERVING_*``), read once in ``main`` and passed down.

Generic over the use case's rules (:attr:`berg.usecase.UseCase.rules`), like validation's:
``main`` reads ``BERG_USE_CASE`` first, then ``ServingSettings[use_case.rules]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from berg.contracts._types import Identifier
from berg.contracts.rules import ContractRules
from berg.kafka.topics import PREDICTIONS, SHADOW_PREDICTIONS
from berg.settings import ServiceSettings, service_config
from berg.web.app import WebSettings

__all__ = [
    "SHAPES",
    "GrpcSettings",
    "PredictionLogSettings",
    "PredictorLinkSettings",
    "ServingSettings",
    "ShadowSettings",
    "Shape",
]

Shape = Literal["fused", "transformer", "predictor"]
SHAPES: tuple[Shape, ...] = ("fused", "transformer", "predictor")
"""``fused``: lookup and predict in one process; ``transformer`` and ``predictor``: KServe's standard pair."""

PredictorProtocol = Literal["v1", "v2", "grpc-v2"]


class GrpcSettings(BaseModel):
    """The gRPC (Open Inference Protocol V2) listener."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Serve gRPC beside REST."""
    host: str = "127.0.0.1"
    """Interface to bind; ``0.0.0.0`` in a container."""
    port: int = Field(default=8081, ge=1, le=65535)
    """KServe's default gRPC port."""


class PredictorLinkSettings(BaseModel):
    """How the transformer reaches its predictor (KServe's ``predictor_host``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = ""
    """``host:port`` of the predictor's REST port (``v1``, ``v2``) or gRPC port (``grpc-v2``); required
    for the transformer shape."""
    protocol: PredictorProtocol = "grpc-v2"
    """The protocol of the hop: gRPC carries the float32 feature tensors as raw bytes, the cheapest."""
    timeout_s: float = Field(default=5.0, gt=0, le=600)
    """Upper bound on one call to the predictor."""
    use_ssl: bool = False


class PredictionLogSettings(BaseModel):
    """Where every prediction is logged, and how much may wait for Kafka."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Off only for a server with no Kafka at all (benchmarks); the predictor shape never logs."""
    topic: str = Field(default=PREDICTIONS, min_length=1, max_length=249)
    capacity: int = Field(default=10_000, ge=1, le=1_000_000)
    """Predictions waiting for the producer; when full, new ones are dropped and counted
    (``berg_serving_prediction_log_dropped_total``), never blocking a request."""
    close_timeout_s: float = Field(default=5.0, ge=0, le=120)
    """At shutdown, how long to keep sending what is queued."""


class ShadowSettings(BaseModel):
    """The shadow challenger: which alias names it, where its predictions go, how many rows may wait for it.

    Which share of requests it scores is the use case's rollout (``card.rollout.shadow.share``, overridden by
    ``BERG_ROLLOUT_SHADOW_SHARE``); it scores nothing while its alias is unset.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Follow the shadow alias at all; off only for a server with no Kafka (benchmarks). The predictor shape never
    shadows (the transformer beside it does)."""
    alias: str = Field(default="shadow", min_length=1, max_length=64)
    """The registry alias naming the shadow version (moved and cleared by the retraining controller)."""
    topic: str = Field(default=SHADOW_PREDICTIONS, min_length=1, max_length=249)
    """Where each shadow prediction goes (a ``ShadowPredictionV1``)."""
    capacity: int = Field(default=10_000, ge=1, le=1_000_000)
    """Sampled rows waiting for the shadow; when full, new ones are dropped and counted
    (``berg_serving_shadow_dropped_total{reason="queue_full"}``), never blocking a request."""
    close_timeout_s: float = Field(default=2.0, ge=0, le=120)
    """At shutdown, how long to keep scoring and sending what is queued."""


RulesT = TypeVar("RulesT", bound=ContractRules)


class ServingSettings(ServiceSettings, Generic[RulesT]):
    """Which shape to run, where the model and the features are, how to listen and how to stop."""

    model_config = service_config("BERG_SERVING_")

    service_name: str = "serving"
    shape: Shape = "fused"
    """``python -m berg_serving --shape ...`` overrides it."""
    model_name: Identifier | None = None
    """The model's name in the registry and on the endpoints (``/v1/models/<name>:predict``); default: the use
    case's name (``BERG_USE_CASE``), the model it trains."""
    registry_uri: str = Field(default=".berg/registry", min_length=1)
    """The model registry: a folder or any fsspec URI (``s3://bucket/registry``)."""
    alias: str = Field(default="production", min_length=1, max_length=64)
    """The alias the predictor serves and watches."""
    poll_interval_s: float = Field(default=2.0, gt=0, le=3600)
    """How often the predictor reads the alias; a move is served after one poll, a load and a warm-up."""
    feature_repo: Path | None = None
    """The Feast repo (``feature_repo/``); default: the one in this checkout or image."""
    feast_profile: str = "feature_store.yaml"
    """The repo's profile yaml: ``feature_store.yaml`` (embedded) or ``cluster/feature_store.yaml``."""
    web: WebSettings = WebSettings(port=8080)
    """REST (V1 and V2), health and metrics; 8080 is KServe's default."""
    grpc: GrpcSettings = GrpcSettings()
    predictor: PredictorLinkSettings = PredictorLinkSettings()
    prediction_log: PredictionLogSettings = PredictionLogSettings()
    shadow: ShadowSettings = ShadowSettings()
    """The shadow challenger (``BERG_SERVING_SHADOW__*``)."""
    decline_at: float = Field(default=0.9, ge=0.0, le=1.0)
    """Scores at or above the model's threshold are ``review`` (step-up authentication), and at or
    above this ``decline``; below the threshold, ``approve``."""
    max_batch: int = Field(default=256, ge=1, le=10_000)
    """Most transactions in one request."""
    rules: RulesT = Field(default_factory=dict, validate_default=True)
    """The use case's rule parameters; the scored stream's value rules apply to every event scored
    (:mod:`berg.contracts.rules`). Keep them equal to ``BERG_VALIDATION_RULES__*``, so serving scores
    only what validation lets through."""
    lookup_threads: int = Field(default=0, ge=0, le=64)
    """Threads doing Feast online lookups (sharing the process's one FeatureStore); 0 reads on the event
    loop: Redis' async read, or SQLite's local read, cheaper than the hop to a thread and back."""
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    """The event loop: ``auto`` is uvloop when installed (cheaper transports), else asyncio's."""
    v1_route: Literal["direct", "kserve"] = "direct"
    """How ``POST /v1/models/<name>:predict`` reaches the model: ``direct`` calls its stages from a plain
    Starlette route (the same decoding, errors and answer; no FastAPI dependency solving, no DataPlane hop,
    no KServe timers), ``kserve`` through KServe's ``V1Endpoints`` and ``DataPlane``. The protocol is the same."""
    predict_threads: int = Field(default=2, ge=1, le=64)
    """Threads running XGBoost for batches over ``predict_inline_rows``; each prediction uses one OpenMP thread."""
    predict_inline_rows: int = Field(default=1, ge=0, le=1024)
    """Batches of at most this many rows are predicted on the event loop instead (0: never): for one row
    of a typical model the hop to a thread and back costs more CPU than the prediction."""
    workers: int = Field(default=1, ge=1, le=64)
    """Processes serving the same HTTP and gRPC ports: Python runs one core per process (the GIL), so more than 1
    uses more cores of one host. Each worker loads the champion, opens Feast and the prediction log itself, and
    watches the alias on its own (during a swap, workers may serve different versions for one poll interval);
    ``/metrics`` sums them all. 1: one process, as if the setting did not exist."""
    grace_period_s: float = Field(default=30.0, gt=0, le=3600)
    """From SIGTERM to exit, at most (Kubernetes' default ``terminationGracePeriodSeconds``)."""
    drain_delay_s: float = Field(default=2.0, ge=0, le=600)
    """After SIGTERM, readiness answers 503 for this long while requests are still served, so the
    endpoints controller stops routing here before the listeners close."""
    debug_delay_s: float = Field(default=0.0, ge=0, le=60)
    """Test only: every predict waits this long (without blocking the event loop), so tests can
    hold requests in flight. Refused outside development."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.environment != "development" and self.debug_delay_s > 0:
            raise ValueError("debug_delay_s is a test setting; it must be 0 outside development")
        if self.drain_delay_s >= self.grace_period_s:
            raise ValueError(
                f"drain_delay_s ({self.drain_delay_s}) must be shorter than grace_period_s ({self.grace_period_s}), "
                "or in-flight requests get no time to finish"
            )
        if self.shadow.enabled and self.shadow.alias == self.alias:
            raise ValueError(
                f"BERG_SERVING_SHADOW__ALIAS must differ from BERG_SERVING_ALIAS (both {self.alias!r}): "
                "the shadow would score every request twice with the champion"
            )
        return self

    def problems_for(self, shape: Shape) -> list[str]:
        """What this shape needs that the settings lack (empty when it can run)."""
        if shape == "transformer" and not self.predictor.host:
            return ["BERG_SERVING_PREDICTOR__HOST: the transformer shape needs the predictor's host:port"]
        return []
