"""The controller's tick drives rollouts and the watch over a real registry in a temporary folder.

Live behaviour comes from :class:`FakeSignals`, a plain object behind the
:class:`~berg_controller.signals.RolloutSignals` seam; a hand-moved clock drives the
registry and the controller alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from services.controller.tests.helpers import FakeLauncher, build_controller

from berg.problem.card import RolloutSpec
from berg.registry import Lineage, ModelRegistry, VersionMetadata
from berg_controller.controller import Controller
from berg_controller.metrics import ControllerMetrics
from berg_controller.prometheus import PrometheusUnavailable
from berg_controller.rollout import ShadowObservation
from berg_controller.rollout_driver import NotAwaitingApproval, RolloutDriver, UnknownVersion
from berg_controller.store import ControllerStore
from berg_controller.watch import WatchReadings

pytestmark = pytest.mark.integration

MODEL = "fraud"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeSignals:
    """What Prometheus would say; ``down`` makes every read fail like an unreachable Prometheus."""

    def __init__(self) -> None:
        self.observations: list[ShadowObservation] = []
        self.readings: dict[str, WatchReadings] = {}
        self.watched: list[str] = []
        """The versions whose watch readings were asked for, in order."""
        self.down = False

    def shadow_observations(self, model: str) -> list[ShadowObservation]:
        if self.down:
            raise PrometheusUnavailable("connection refused")
        return [seen for seen in self.observations if model == MODEL]

    def watch_readings(self, model: str, version: str, since: datetime) -> WatchReadings:
        if self.down:
            raise PrometheusUnavailable("connection refused")
        self.watched.append(version)
        return self.readings.get(version, WatchReadings())

    def close(self) -> None:
        pass


class World:
    def __init__(self, tmp_path: Path, store: ControllerStore, policy: str) -> None:
        self.clock = Clock()
        self.registry = ModelRegistry(tmp_path / "registry", clock=self.clock)
        self.signals = FakeSignals()
        self.metrics = ControllerMetrics.register(CollectorRegistry(), [MODEL])
        self.launcher = FakeLauncher()
        spec = RolloutSpec.model_validate(
            {
                "policy": policy,
                "shadow": {"min_predictions": 100, "min_labelled": 10, "max_quality_drop": 0.02},
                "watch": {"window_minutes": 60, "max_prediction_psi": 0.25, "max_quality_drop": 0.1},
            }
        )
        self.driver = RolloutDriver(self.registry, spec, self.metrics, self.signals, self.clock)
        self.controller: Controller = build_controller(
            store, self.launcher, tmp_path / "registry", clock=self.clock, rollouts=self.driver
        )
        self.store = store
        lineage = Lineage(
            data_start=self.clock.now - timedelta(days=30),
            data_end=self.clock.now,
            feature_service="fraud_model_v1",
            pipeline_run_id="test",
            code_version="test",
        )
        self._metadata = VersionMetadata(lineage=lineage, metrics={"pr_auc": 0.8})

    def register(self) -> str:
        return self.registry.register(MODEL, {"model.bst": b"x"}, self._metadata).version

    def champion(self) -> str:
        version = self.register()
        self.registry.promote(MODEL, version, reason="first champion")
        return version

    def candidate(self, policy: str = "shadow+approval") -> str:
        version = self.register()
        self.registry.record_rollout(MODEL, version, "candidate", actor="pipeline", policy=policy, reason="gate")
        return version

    def actions(self, version: str) -> list[str]:
        return [event.action for event in self.registry.rollout_history(MODEL, version)]

    def alias(self, alias: str) -> str | None:
        move = self.registry.alias(MODEL, alias)
        return None if move is None else move.version

    def tick(self) -> None:
        self.clock.advance(seconds=5)
        self.controller.tick()

    def gauge(self, name: str, **labels: str) -> float | None:
        return _sample(self.metrics, name, labels)


def _sample(metrics: ControllerMetrics, name: str, labels: dict[str, str]) -> float | None:
    collectors = (metrics.pending_approvals, metrics.rollout_stage, metrics.last_rollback, metrics.rollbacks)
    for collector in collectors:
        for family in collector.collect():
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
    return None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ControllerStore]:
    opened = ControllerStore.open(f"sqlite:///{tmp_path / 'controller.db'}")
    yield opened
    opened.close()


def world(tmp_path: Path, store: ControllerStore, policy: str = "shadow+approval") -> World:
    return World(tmp_path, store, policy)


def shadow_seen(champion: str, shadow: str, *, shadow_pr_auc: float = 0.81) -> ShadowObservation:
    return ShadowObservation(champion, shadow, 150, 20, 0.80, shadow_pr_auc)


def test_shadow_then_approval_then_promotion(
    tmp_path: Path, store: ControllerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world(tmp_path, store)
    champion = w.champion()
    challenger = w.candidate()

    w.tick()
    assert w.actions(challenger) == ["candidate", "shadow_started"]
    assert w.alias("shadow") == challenger
    w.tick()
    assert w.actions(challenger) == ["candidate", "shadow_started"], "no observations yet: it waits"

    w.signals.observations = [shadow_seen("v0000", challenger), shadow_seen(champion, challenger)]
    w.tick()
    assert w.actions(challenger)[-2:] == ["shadow_passed", "awaiting_approval"]
    assert w.alias("production") == champion
    assert w.gauge("berg_controller_pending_approvals", model=MODEL) == 1
    assert w.gauge("berg_controller_rollout_stage", model=MODEL, version=challenger, stage="awaiting_approval") == 1

    w.driver.review(MODEL, challenger, approve=True, actor="alice", reason="looks right")
    # Where the aliases stood when ``promoted`` was written: a reader that sees it must find the move done.
    when_promoted: list[tuple[str | None, str | None]] = []
    record = w.registry.record_rollout

    def recording(model: str, version: str, action: str, **fields: Any) -> Any:
        if action == "promoted":
            when_promoted.append((w.alias("production"), w.alias("shadow")))
        return record(model, version, action, **fields)

    monkeypatch.setattr(w.registry, "record_rollout", recording)
    w.tick()

    assert when_promoted == [(challenger, None)]
    assert w.alias("production") == challenger
    assert w.alias("shadow") is None
    assert w.actions(challenger)[-2:] == ["approved", "promoted"]
    move = w.registry.alias(MODEL, "production")
    assert move is not None
    assert "approved by alice (looks right)" in move.reason
    assert "PR-AUC 0.8100 vs champion v0001 0.8000" in move.reason
    assert w.gauge("berg_controller_pending_approvals", model=MODEL) == 0
    assert w.gauge("berg_controller_rollout_stage", model=MODEL, version=challenger, stage="approved") is None
    assert w.launcher.started == []


def test_a_rejected_version_never_reaches_production(tmp_path: Path, store: ControllerStore) -> None:
    w = world(tmp_path, store, "approval")
    champion = w.champion()
    challenger = w.candidate("approval")
    w.tick()
    assert w.actions(challenger) == ["candidate", "awaiting_approval"]

    event = w.driver.review(MODEL, challenger, approve=False, actor="bob", reason="too risky before the sale")
    w.tick()
    w.tick()

    assert event.actor == "bob"
    assert w.actions(challenger) == ["candidate", "awaiting_approval", "rejected"]
    assert w.alias("production") == champion
    with pytest.raises(NotAwaitingApproval, match="rejected"):
        w.driver.review(MODEL, challenger, approve=True, actor="alice", reason="changed my mind")
    with pytest.raises(UnknownVersion):
        w.driver.review(MODEL, "v0099", approve=True, actor="alice", reason="no such version")


def test_a_shadow_worse_than_the_champion_fails_and_frees_the_alias(tmp_path: Path, store: ControllerStore) -> None:
    w = world(tmp_path, store)
    champion = w.champion()
    challenger = w.candidate()
    w.tick()
    w.signals.observations = [shadow_seen(champion, challenger, shadow_pr_auc=0.70)]

    w.tick()

    assert w.actions(challenger)[-1] == "shadow_failed"
    assert w.alias("shadow") is None
    assert w.alias("production") == champion


def test_a_newer_candidate_supersedes_and_takes_the_shadow(tmp_path: Path, store: ControllerStore) -> None:
    w = world(tmp_path, store)
    w.champion()
    older = w.candidate()
    w.tick()
    assert w.alias("shadow") == older

    newer = w.candidate()
    w.tick()
    w.tick()

    assert w.actions(older)[-1] == "superseded"
    assert w.actions(newer) == ["candidate", "shadow_started"]
    assert w.alias("shadow") == newer


def test_prometheus_down_holds_the_shadow_stage_and_the_watch(tmp_path: Path, store: ControllerStore) -> None:
    w = world(tmp_path, store, "shadow")
    champion = w.champion()
    challenger = w.candidate("shadow")
    w.tick()
    w.signals.observations = [shadow_seen(champion, challenger)]
    w.signals.down = True
    w.tick()
    assert w.actions(challenger) == ["candidate", "shadow_started"]

    w.signals.down = False
    w.tick()
    assert w.alias("production") == challenger

    w.signals.readings[challenger] = WatchReadings(prediction_psi=0.9)
    w.signals.down = True
    w.tick()
    assert w.alias("production") == challenger, "never roll back on a guess"


def test_a_breach_in_the_window_rolls_back_once_and_starts_no_run(tmp_path: Path, store: ControllerStore) -> None:
    w = world(tmp_path, store, "offline")
    champion = w.champion()
    bad = w.register()
    w.registry.promote(MODEL, bad, reason="offline gate")
    w.signals.readings[bad] = WatchReadings(prediction_psi=0.62)

    w.tick()
    w.tick()
    w.tick()

    assert w.alias("production") == champion
    assert w.actions(bad) == ["rolled_back"]
    [event] = w.registry.rollout_history(MODEL, bad)
    assert event.details["prediction_psi"] == 0.62
    assert "prediction PSI 0.6200 above 0.25" in event.reason
    assert [move.action for move in w.registry.history(MODEL, "production")] == ["promote", "promote", "rollback"]
    assert w.gauge("berg_controller_rollbacks_total", model=MODEL) == 1
    assert w.gauge("berg_controller_last_rollback_timestamp_seconds", model=MODEL) is not None
    assert w.launcher.started == []
    assert store.runs(100, None) == []
    assert store.triggers(100, None) == []


def test_a_models_first_version_is_not_watched_there_is_nothing_to_go_back_to(
    tmp_path: Path, store: ControllerStore
) -> None:
    w = world(tmp_path, store, "offline")
    first = w.champion()
    # The world drifting under the first model (the demo's fraud wave) reads like a bad version, but a rollback
    # has nowhere to go; the drift alerts start the retraining run instead.
    w.signals.readings[first] = WatchReadings(prediction_psi=0.62)

    w.tick()

    assert w.alias("production") == first
    assert w.actions(first) == []
    assert w.signals.watched == []


def test_a_breach_after_the_window_is_left_to_the_alerts(tmp_path: Path, store: ControllerStore) -> None:
    w = world(tmp_path, store, "offline")
    w.champion()
    version = w.register()
    w.registry.promote(MODEL, version)
    w.clock.advance(minutes=61)
    w.signals.readings[version] = WatchReadings(firing_alerts=("ServingErrorRateHigh",))

    w.tick()

    assert w.alias("production") == version


def test_a_recorded_rollback_whose_alias_move_was_lost_is_finished(tmp_path: Path, store: ControllerStore) -> None:
    w = world(tmp_path, store, "offline")
    champion = w.champion()
    bad = w.register()
    w.registry.promote(MODEL, bad)
    w.clock.advance(seconds=1)
    w.registry.record_rollout(MODEL, bad, "rolled_back", actor="berg-controller", reason="watch: crash before move")

    w.tick()
    w.tick()

    assert w.alias("production") == champion
    assert w.actions(bad) == ["rolled_back"]


def test_the_last_rollback_gauge_survives_a_restart(tmp_path: Path, store: ControllerStore) -> None:
    w = world(tmp_path, store, "offline")
    w.champion()
    w.registry.promote(MODEL, w.register())
    back = w.registry.rollback(MODEL, "production", "by hand")
    fresh = ControllerMetrics.register(CollectorRegistry(), [MODEL])

    RolloutDriver(w.registry, w.driver.spec, fresh, None, w.clock).restore_gauges([MODEL])

    assert _sample(fresh, "berg_controller_last_rollback_timestamp_seconds", {"model": MODEL}) == (
        back.moved_at.timestamp()
    )


def test_a_rejection_after_the_shadow_stage_frees_the_shadow_alias(tmp_path: Path, store: ControllerStore) -> None:
    w = world(tmp_path, store)
    champion = w.champion()
    challenger = w.candidate()
    w.tick()
    w.signals.observations = [shadow_seen(champion, challenger)]
    w.tick()
    assert w.alias("shadow") == challenger, "the shadow keeps scoring while a person decides"

    w.driver.review(MODEL, challenger, approve=False, actor="bob", reason="no")
    w.tick()

    assert w.alias("shadow") is None
    assert w.alias("production") == champion


def test_a_shadow_set_by_hand_on_a_version_without_a_rollout_is_left_alone(
    tmp_path: Path, store: ControllerStore
) -> None:
    w = world(tmp_path, store)
    w.champion()
    experiment = w.register()
    w.registry.promote(MODEL, experiment, "shadow", "by hand")

    w.tick()

    assert w.alias("shadow") == experiment
