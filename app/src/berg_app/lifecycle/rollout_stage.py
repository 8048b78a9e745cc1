"""A rollout in the demo: a version the gate passed goes through the policy's stages before production.

Under a rollout policy (the local stack's is ``shadow``) the retraining run registers its
challenger as a ``candidate`` and the controller takes it on: it points the ``shadow``
alias at it, serving scores the live traffic with it too (the champion still answers),
monitoring compares the two on the same requests, and the controller passes the stage
from those gauges and promotes. The demo follows that from the registry's rollout
history and shows what monitoring measured while it waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Console

from berg.registry import ModelRegistry, RolloutEvent, stage_of
from berg_app.lifecycle.probes import PrometheusClient

__all__ = ["ShadowFigures", "StageOutcome", "follow_rollout", "shadow_figures"]

_SETTLED = frozenset({"promoted", "failed", "rejected", "superseded", "rolled_back"})
"""Stages after which nothing more happens without a person or a new run."""


@dataclass(frozen=True)
class ShadowFigures:
    """What monitoring measured of the shadow beside the champion on the same requests."""

    predictions: int
    agreement: float | None
    flips: int | None
    score_psi: float | None

    def describe(self) -> str:
        parts = [f"{self.predictions:,} requests scored by both"]
        if self.agreement is not None:
            parts.append(f"decisions agree on {self.agreement:.1%}")
        if self.flips is not None:
            parts.append(f"{self.flips:,} flipped")
        if self.score_psi is not None:
            parts.append(f"score PSI {self.score_psi:.3f}")
        return ", ".join(parts)


@dataclass
class StageOutcome:
    """Where the challenger's rollout ended, its history, and the last shadow figures seen."""

    stage: str
    history: list[RolloutEvent] = field(default_factory=list)
    shadow: ShadowFigures | None = None


def _value(prometheus: PrometheusClient, metric: str, model: str, version: str) -> float | None:
    found = prometheus.query(f'max({metric}{{model="{model}",shadow_version="{version}"}})')
    return float(found[0]["value"][1]) if found else None


def shadow_figures(prometheus: PrometheusClient, model: str, version: str) -> ShadowFigures | None:
    """Monitoring's comparison of shadow ``version`` with the champion, as Prometheus has it; None before any."""
    predictions = _value(prometheus, "berg_monitoring_shadow_predictions", model, version)
    if predictions is None:
        return None
    flips = _value(prometheus, "berg_monitoring_shadow_decision_flips", model, version)
    return ShadowFigures(
        predictions=int(predictions),
        agreement=_value(prometheus, "berg_monitoring_shadow_decision_agreement", model, version),
        flips=None if flips is None else int(flips),
        score_psi=_value(prometheus, "berg_monitoring_shadow_score_psi", model, version),
    )


def follow_rollout(
    registry: ModelRegistry,
    prometheus: PrometheusClient | None,
    model: str,
    version: str,
    timeout_s: float,
    console: Console,
    marks: dict[str, datetime],
    act: str = "Act 4",
    on_poll: Callable[[str], object] | None = None,
) -> StageOutcome:
    """Wait until the candidate's rollout settles (promoted, failed, rejected...) or waits for a person.

    Args:
        prometheus: where monitoring's shadow figures are read; None: not shown.
        marks: filled with the time each step was recorded (``shadow_started``, ``shadow_passed``, ...).
        act: the act the lines are printed under (the first model's rollout is Act 2's).
        on_poll: called with the stage at each look at the registry (the demo feeds the shadow stage
            traffic with it), also with the stage it settled in.

    Raises:
        TimeoutError: nothing settled within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    outcome = StageOutcome(stage="candidate")
    announced: set[str] = set()
    told_to_approve = False
    with console.status(f"{act}: {version} passed the gate; the controller takes it through the rollout") as status:
        while True:
            outcome.history = registry.rollout_history(model, version)
            outcome.stage = stage_of(outcome.history) or "candidate"
            if on_poll is not None:
                on_poll(outcome.stage)
            for event in outcome.history:
                if event.action not in announced:
                    announced.add(event.action)
                    marks[event.action] = event.at
                    console.print(f"[green]{act}[/] {version} {event.action.replace('_', ' ')}: {event.reason}")
            if outcome.stage == "shadow" and prometheus is not None:
                figures = shadow_figures(prometheus, model, version)
                if figures is not None:
                    outcome.shadow = figures
                    status.update(f"{act}: shadow {version} beside the champion: {figures.describe()}")
            if outcome.stage in _SETTLED:
                if "shadow_started" in announced and prometheus is not None:
                    outcome.shadow = shadow_figures(prometheus, model, version) or outcome.shadow
                return outcome
            if outcome.stage == "awaiting_approval" and not told_to_approve:
                told_to_approve = True
                console.print(
                    f"[yellow]{act}[/] {version} waits for a person: `uv run berg models approve {model} {version} "
                    '--reason "..."` (or reject)'
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"the rollout of {model} {version} did not settle in {timeout_s:.0f} s")
            time.sleep(1.0)
