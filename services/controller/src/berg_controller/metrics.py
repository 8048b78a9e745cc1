"""The controller's metrics (``berg_controller_*``), exactly as ``docs/metrics.md`` names them."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric

__all__ = ["ControllerMetrics", "RolloutStages"]


class RolloutStages:
    """``berg_controller_rollout_stage{model, version, stage}``: 1 per unfinished rollout, exported as set.

    A collector, not a labelled Gauge: a rollout that ends must lose its series, and a Gauge's
    ``remove`` is refused when the process runs with prometheus_client's multi-process mode.
    """

    def __init__(self) -> None:
        self._stages: dict[str, frozenset[tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def set(self, model: str, stages: Iterable[tuple[str, str]]) -> None:
        """``model``'s unfinished rollouts now, as (version, stage) pairs."""
        with self._lock:
            self._stages[model] = frozenset(stages)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "berg_controller_rollout_stage",
            "1 for the stage each unfinished rollout is in.",
            labels=["model", "version", "stage"],
        )
        with self._lock:
            current = sorted((model, *pair) for model, pairs in self._stages.items() for pair in pairs)
        for model, version, stage in current:
            family.add_metric([model, version, stage], 1)
        yield family


@dataclass(frozen=True)
class ControllerMetrics:
    """Counters and gauges of one controller, registered on its own registry."""

    alerts_received: Counter
    """``berg_controller_alerts_received_total{status}``: alerts in accepted webhook payloads."""
    triggers: Counter
    """``berg_controller_triggers_total{model, source, decision}``."""
    runs_finished: Counter
    """``berg_controller_runs_total{model, status}``: runs finished, ``succeeded`` or ``failed``."""
    active_runs: Gauge
    """``berg_controller_active_runs{model}``: 0 or 1."""
    last_promotion: Gauge
    """``berg_controller_last_promotion_timestamp_seconds{model}``: when production last moved."""
    pending_approvals: Gauge
    """``berg_controller_pending_approvals{model}``: versions waiting for a person's approval."""
    rollout_stage: RolloutStages
    """``berg_controller_rollout_stage{model, version, stage}``: 1 for each unfinished rollout's stage."""
    last_rollback: Gauge
    """``berg_controller_last_rollback_timestamp_seconds{model}``: when production was last rolled back."""
    rollbacks: Counter
    """``berg_controller_rollbacks_total{model}``: rollbacks the watch made."""

    @classmethod
    def register(cls, registry: CollectorRegistry, models: Iterable[str]) -> ControllerMetrics:
        """Create the metrics on ``registry``, with a zero series per managed model (so rates start at 0)."""
        metrics = cls(
            alerts_received=Counter(
                "berg_controller_alerts_received",
                "Alerts in accepted webhook payloads.",
                ["status"],
                registry=registry,
            ),
            triggers=Counter(
                "berg_controller_triggers",
                "Triggers and what the policy decided.",
                ["model", "source", "decision"],
                registry=registry,
            ),
            runs_finished=Counter(
                "berg_controller_runs", "Pipeline runs finished.", ["model", "status"], registry=registry
            ),
            active_runs=Gauge(
                "berg_controller_active_runs", "Runs in progress (0 or 1).", ["model"], registry=registry
            ),
            last_promotion=Gauge(
                "berg_controller_last_promotion_timestamp_seconds",
                "When production last moved to a new version.",
                ["model"],
                registry=registry,
            ),
            pending_approvals=Gauge(
                "berg_controller_pending_approvals",
                "Versions waiting for a person's approval.",
                ["model"],
                registry=registry,
            ),
            rollout_stage=RolloutStages(),
            last_rollback=Gauge(
                "berg_controller_last_rollback_timestamp_seconds",
                "When production was last rolled back (by the watch or by hand).",
                ["model"],
                registry=registry,
            ),
            rollbacks=Counter(
                "berg_controller_rollbacks",
                "Rollbacks of production the watch made after a breach.",
                ["model"],
                registry=registry,
            ),
        )
        registry.register(metrics.rollout_stage)
        for status in ("firing", "resolved"):
            metrics.alerts_received.labels(status)
        for model in models:
            metrics.active_runs.labels(model).set(0)
            metrics.pending_approvals.labels(model).set(0)
            metrics.rollbacks.labels(model)
            for status in ("succeeded", "failed"):
                metrics.runs_finished.labels(model, status)
        return metrics
