"""The Berg services the local stack runs, and how each is configured there.

Each service reads its own ``BERG_<SERVICE>_*`` settings; the stack sets the
ones that tie it to this stack (broker address, port, state folders) and leaves
the rest at their defaults.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from berg_app.stack.layout import StateLayout
from berg_app.stack.settings import StackSettings
from berg_app.stack.supervisor import Program

__all__ = ["ServiceSpec", "service_programs", "service_specs"]


@dataclass(frozen=True)
class ServiceSpec:
    """One Berg service as the stack runs it."""

    name: str
    module: str
    env_prefix: str
    port: int
    extra_env: dict[str, str]
    """Settings of the service, without its prefix."""
    shared_env: dict[str, str] = field(default_factory=dict)
    """Variables read as they are (``BERG_STATE_DIR``: Feast's feature_store.yaml names it)."""
    must_be_ready: bool = True
    """``berg up`` waits for readiness; False waits for liveness only (serving is not ready before the
    first model is promoted, and that is not a failure of the stack)."""


_MICRO_BATCH = {"BATCH_MAX_WAIT_MS": "100"}
"""The data plane's services hand a micro-batch over at most 0.1 s after its first record (their defaults:
0.5 s, validation 1 s). A backlog fills whole batches anyway; a trickle reaches the feature store about 2 s
sooner, which the demo's replay pays once per slice: it scores a slice only once the slices before it
are stored."""


def service_specs(settings: StackSettings, layout: StateLayout) -> list[ServiceSpec]:
    """The services enabled in ``settings.services``, in pipeline order."""
    known = {
        "ingestion": ServiceSpec(
            "ingestion",
            "berg_ingestion",
            "BERG_INGESTION_",
            settings.ports.ingestion,
            {"LANDING_DIR": str(layout.root / "landing"), **_MICRO_BATCH},
        ),
        "validation": ServiceSpec(
            "validation",
            "berg_validation",
            "BERG_VALIDATION_",
            settings.ports.validation,
            {"DATA_DOCS_DIR": str(layout.root / "gx"), **_MICRO_BATCH},
        ),
        "features": ServiceSpec(
            "features",
            "berg_features",
            "BERG_FEATURES_",
            settings.ports.features,
            # Snapshot views every 10 s, and 1 s after the last run once new data is stored: the demo
            # compresses days of event time into minutes, and scores each slice once they cover it.
            {
                "OFFLINE_ROOT": str(layout.root.absolute() / "feast" / "offline"),
                "SNAPSHOT_INTERVAL_S": "10",
                "SNAPSHOT_MIN_INTERVAL_S": "1",
                **_MICRO_BATCH,
            },
            {"BERG_STATE_DIR": str(layout.root.absolute())},
        ),
        "serving": ServiceSpec(
            "serving",
            "berg_serving",
            "BERG_SERVING_",
            settings.ports.serving,
            {
                "SHAPE": "fused",
                "REGISTRY_URI": _absolute(settings.model_registry_uri),
                "GRPC__HOST": settings.host,
                "GRPC__PORT": str(settings.ports.serving_grpc),
            },
            {"BERG_STATE_DIR": str(layout.root.absolute())},
            must_be_ready=False,
        ),
        "monitoring": ServiceSpec(
            "monitoring",
            "berg_monitoring",
            "BERG_MONITORING_",
            settings.ports.monitoring,
            {"REGISTRY_URI": _absolute(settings.model_registry_uri)},
        ),
        "controller": ServiceSpec(
            "controller",
            "berg_controller",
            "BERG_CONTROLLER_",
            settings.ports.controller,
            {
                # The token Alertmanager's webhook sends (berg up writes it once, mode 0600).
                "WEBHOOK_TOKEN_FILE": str(layout.controller_token.absolute()),
                "STATE_DIR": str((layout.root / "controller").absolute()),
                "REGISTRY_URI": _absolute(settings.model_registry_uri),
                # Pipeline runs read the stack's Feast repo state and label store.
                "LOCAL__STATE_DIR": str(layout.root.absolute()),
                "COOLDOWN_S": str(settings.retrain_cooldown_s),
                # The rollout's shadow comparison and the watch after a promotion read the stack's Prometheus.
                "PROMETHEUS_URL": f"http://{settings.host}:{settings.ports.prometheus}",
            },
            # Read by the pipeline runs it starts (`berg pipeline run`), which inherit its environment.
            {"BERG_TRAINING_WINDOW_DAYS": str(settings.training_window_days)},
        ),
    }
    return [known[name] for name in known if name in settings.services]


def _absolute(uri: str) -> str:
    """A local registry path made absolute (the service runs elsewhere); an fsspec URI as it is."""
    return uri if "://" in uri else str(Path(uri).absolute())


def service_programs(settings: StackSettings, layout: StateLayout) -> list[Program]:
    """Supervised programs for the enabled services; started once Kafka is healthy and topics exist."""
    programs = []
    for spec in service_specs(settings, layout):
        environment = {
            "KAFKA__BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
            "WEB__HOST": settings.host,
            "WEB__PORT": str(spec.port),
            **spec.extra_env,
        }
        programs.append(
            Program(
                spec.name,
                [sys.executable, "-m", spec.module],
                {
                    **spec.shared_env,
                    **({"BERG_USE_CASE": settings.use_case} if settings.use_case else {}),
                    # One rollout for every service (serving's share, the controller's stages, the pipeline's gate).
                    "BERG_ROLLOUT_POLICY": settings.rollout_policy,
                    "BERG_ROLLOUT_SHADOW_MIN_PREDICTIONS": str(settings.rollout_shadow_min_predictions),
                    "BERG_ROLLOUT_SHADOW_MIN_LABELLED": str(settings.rollout_shadow_min_labelled),
                    **{f"{spec.env_prefix}{key}": value for key, value in environment.items()},
                },
                priority=30,
                stop_wait_s=30,
                start_s=1,
                autostart=False,
            )
        )
    return programs
