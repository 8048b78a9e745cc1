"""Settings of the local stack: where state lives and the one table of ports."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings

from berg.settings import service_config

__all__ = ["DEFAULT_KAFKA_VERSION", "PortTable", "StackSettings"]

DEFAULT_KAFKA_VERSION = "4.1.1"

ServiceName = Literal["ingestion", "validation", "features", "serving", "monitoring", "controller"]
"""The Berg services the local stack can run."""


class PortTable(BaseModel):
    """Every port the local stack listens on, in one place."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kafka: int = Field(default=9092, ge=1, le=65535)
    """Kafka broker listener (clients connect here)."""
    kafka_controller: int = Field(default=9095, ge=1, le=65535)
    """Kafka KRaft controller listener."""
    prometheus: int = Field(default=9090, ge=1, le=65535)
    """Prometheus web UI and API."""
    alertmanager: int = Field(default=9093, ge=1, le=65535)
    """Alertmanager web UI and API."""
    ingestion: int = Field(default=8101, ge=1, le=65535)
    """Ingestion service: health and metrics."""
    validation: int = Field(default=8102, ge=1, le=65535)
    """Validation service: health and metrics."""
    features: int = Field(default=8103, ge=1, le=65535)
    """Features service: health and metrics."""
    serving: int = Field(default=8104, ge=1, le=65535)
    """Serving (fused shape): V1 and V2 REST inference, health and metrics."""
    serving_grpc: int = Field(default=8105, ge=1, le=65535)
    """Serving: V2 gRPC inference."""
    monitoring: int = Field(default=8106, ge=1, le=65535)
    """Monitoring exporter: drift, quality and business metrics."""
    controller: int = Field(default=8107, ge=1, le=65535)
    """Retraining controller: Alertmanager webhook, runs and triggers API, metrics."""

    @model_validator(mode="after")
    def _distinct(self) -> PortTable:
        ports = list(self.as_dict().values())
        if len(set(ports)) != len(ports):
            raise ValueError(f"ports must be distinct: {self.as_dict()}")
        return self

    def as_dict(self) -> dict[str, int]:
        """Component name to port."""
        return {name: int(port) for name, port in self}


class StackSettings(BaseSettings):
    """``BERG_*`` settings for ``berg up``/``down``/``status``/``doctor``/``demo``."""

    model_config = service_config("BERG_")

    state_dir: Path = Path(".berg")
    """Everything the stack writes: data, logs, generated configs, cached Kafka jars."""
    host: str = "127.0.0.1"
    """Every server listens here: loopback only."""
    ports: PortTable = PortTable()
    kafka_version: str = Field(default=DEFAULT_KAFKA_VERSION, pattern=r"^\d+\.\d+\.\d+$")
    """Apache Kafka release fetched from Maven Central (``org.apache.kafka:kafka_2.13``)."""
    kafka_home: Path | None = Field(
        default=None, validation_alias=AliasChoices("kafka_home", "KAFKA_HOME", "BERG_KAFKA_HOME")
    )
    """An existing Kafka distribution; its ``libs/`` is used instead of fetching jars."""
    kafka_heap: str = Field(default="512m", pattern=r"^\d+[mg]$")
    """JVM heap for the broker."""
    topic_partitions: int = Field(default=3, ge=1, le=64)
    """Partitions of each Berg topic unless overridden."""
    topic_partition_overrides: dict[str, int] = Field(default_factory=dict)
    """Topic name to partition count, e.g. ``{"transactions.raw": 6}``."""
    prometheus_bin: str = "prometheus"
    """Prometheus binary (Debian package ``prometheus``)."""
    alertmanager_bin: str = "prometheus-alertmanager"
    """Alertmanager binary (Debian package ``prometheus-alertmanager``)."""
    scrape_interval_s: int = Field(default=15, ge=1, le=300)
    """Prometheus scrape and rule evaluation interval."""
    startup_timeout_s: float = Field(default=120.0, gt=0)
    """How long ``berg up`` waits for every component to become healthy."""
    services: list[ServiceName] = Field(default_factory=lambda: list(get_args(ServiceName)))
    """Berg services ``berg up`` runs beside Kafka, Prometheus and Alertmanager (JSON list; ``[]`` for none)."""
    training_window_days: float = Field(default=14.0, ge=1, le=365)
    """Days of label-complete traffic the controller's pipeline runs train and evaluate on."""
    retrain_cooldown_s: float = Field(default=60.0, ge=0)
    """The controller's per-model cooldown here: short, so ``berg demo``'s loop can close minutes after the
    first model (a cluster keeps the controller's own default, 30 minutes)."""
    rollout_policy: str = Field(default="shadow", pattern=r"^[a-z+, ]{1,40}$")
    """The stack's rollout policy (``BERG_ROLLOUT_POLICY``, passed to every service): ``shadow`` here, so the demo's
    challenger scores live traffic beside the champion before the controller promotes it; ``offline`` promotes at
    the gate."""
    rollout_shadow_min_predictions: int = Field(default=200, ge=1)
    """Shadow predictions before the shadow stage passes here (``BERG_ROLLOUT_SHADOW_MIN_PREDICTIONS``)."""
    rollout_shadow_min_labelled: int = Field(default=0, ge=0)
    """Labelled shadow predictions the stage needs here (``BERG_ROLLOUT_SHADOW_MIN_LABELLED``): none, because the
    demo replays weeks in minutes and holds the live traffic's labels back until the loop has closed."""
    use_case: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]*$")
    """The use case every service of the stack serves (``BERG_USE_CASE``, passed to each as it is); unset: the
    only one installed (:func:`berg.usecase.resolve_use_case`)."""
    registry_uri: str | None = Field(default=None, min_length=1)
    """Model registry root: a path or an fsspec URI (``s3://bucket/registry``); unset means ``<state_dir>/registry``."""

    @property
    def model_registry_uri(self) -> str:
        """Where the model registry lives: ``registry_uri``, or ``<state_dir>/registry`` when it is unset."""
        return self.registry_uri if self.registry_uri is not None else str(self.state_dir / "registry")

    @property
    def kafka_bootstrap(self) -> str:
        """``host:port`` of the broker."""
        return f"{self.host}:{self.ports.kafka}"
