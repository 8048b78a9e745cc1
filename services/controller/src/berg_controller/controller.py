"""The controller: triggers in, policy, history, runs out (transport-free; the API and the loop call it).

Every trigger is decided and recorded in one transaction with the run it
starts, and the run is launched only after that commit; a webhook's alert keys
are stored in the same transaction. So a crash anywhere leaves either nothing
(the sender retries and the trigger is decided again) or a recorded pending run
that the next :meth:`Controller.tick` launches (exactly once, see the launchers).

An alert that names a model version is decided against the version the
registry's ``production`` alias names, read just before that transaction; when
the registry cannot be read nothing is stored and the sender is told to retry:
no run starts on a guess.

Example:
    >>> controller = Controller(store, launcher, policy, metrics, registry_view)
    >>> controller.receive(payload)          # POST /alerts
    >>> controller.tick()                    # the background loop, every few seconds
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from berg.contracts.alerts import AlertmanagerWebhookV4
from berg_controller.cron import CronSchedule
from berg_controller.data_volume import DataVolumeSource
from berg_controller.launchers import Launcher, LaunchError, LaunchUnavailable
from berg_controller.metrics import ControllerMetrics
from berg_controller.policy import (
    ModelState,
    PolicyConfig,
    Trigger,
    Verdict,
    data_volume_trigger,
    decide,
    managed_model,
    manual_trigger,
    needs_production_version,
    needs_rollout_state,
    schedule_trigger,
    trigger_from_alert,
)
from berg_controller.results import RegistryView
from berg_controller.rollout_driver import RolloutDriver
from berg_controller.store import AlertKey, ControllerStore, RunRecord, StoreTransaction, StoreUnavailable

__all__ = ["Controller", "DataVolumeCheck", "Decided", "FaultHook", "WebhookOutcome", "new_run_id"]

log = logging.getLogger(__name__)

Finished = Literal["succeeded", "failed"]
FaultHook = Callable[[str], None]
"""Called with ``after_store`` and ``after_launch`` while a webhook is handled (crash tests)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def new_run_id(now: datetime) -> str:
    """A run id that sorts by creation time: ``20260101-030000-ab12cd34``."""
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Decided:
    """One trigger, the policy's verdict, and the run it started."""

    trigger: Trigger
    verdict: Verdict
    run: RunRecord | None = None
    active_run: str | None = None
    """The model's active run when the verdict is ``active_run``."""


@dataclass(frozen=True)
class WebhookOutcome:
    """What one webhook notification did."""

    alerts: int
    duplicates: int
    """Alerts already received (a redelivery)."""
    decided: list[Decided] = field(default_factory=list)

    @property
    def runs_started(self) -> list[str]:
        return [d.run.id for d in self.decided if d.run is not None]


@dataclass(frozen=True)
class DataVolumeCheck:
    """The optional data-volume poll: a source, its threshold and how often to ask."""

    source: DataVolumeSource
    threshold: int
    interval: timedelta


_NO_STATE = ModelState()
"""What the policy sees of a model the controller does not manage (it ignores the trigger anyway)."""


class _AlreadyStarted(Exception):
    """Another attempt marked the run running first."""


class Controller:
    """Decides triggers, records them, starts and follows runs.

    Args:
        store: the history.
        launcher: starts and follows runs.
        policy: which triggers start a run.
        metrics: the service's metrics.
        registry: run results and the last promotion.
        schedules: cron schedules by model.
        data_volume: the optional Prometheus-backed data-volume trigger.
        rollouts: moves candidates through the rollout policy and watches promotions; None: neither.
        run_timeout: a run still going after this long is stopped and failed.
        clock: UTC now.
        fault: test hook (see :data:`FaultHook`).
    """

    def __init__(
        self,
        store: ControllerStore,
        launcher: Launcher,
        policy: PolicyConfig,
        metrics: ControllerMetrics,
        registry: RegistryView,
        *,
        schedules: Mapping[str, CronSchedule] | None = None,
        data_volume: DataVolumeCheck | None = None,
        rollouts: RolloutDriver | None = None,
        run_timeout: timedelta = timedelta(hours=6),
        clock: Callable[[], datetime] = _utc_now,
        fault: FaultHook | None = None,
    ) -> None:
        self._store = store
        self._launcher = launcher
        self._policy = policy
        self._metrics = metrics
        self._registry = registry
        self._schedules = dict(schedules or {})
        self._data_volume = data_volume
        self._rollouts = rollouts
        self._run_timeout = run_timeout
        self._clock = clock
        self._fault = fault
        self._launching: set[str] = set()
        self._launching_lock = threading.Lock()
        # Schedules fire for slots after start-up: no catch-up of what passed while it was down.
        self._schedules_checked_at = clock()
        self._data_volume_checked_at: datetime | None = None

    @property
    def policy(self) -> PolicyConfig:
        return self._policy

    @property
    def store(self) -> ControllerStore:
        return self._store

    @property
    def rollouts(self) -> RolloutDriver | None:
        return self._rollouts

    # Triggers

    def _production_versions(self, triggers: Iterable[Trigger]) -> dict[str, str | None]:
        """The production version of each model whose triggers the policy compares with it, read now.

        Read before the write transaction (the registry may be remote and slow); a promotion between the two
        is a matter of milliseconds and the next alert is decided afresh.

        Raises:
            RegistryUnavailable: the registry cannot be read; nothing was decided.
        """
        models = {t.model for t in triggers if needs_production_version(t, self._policy)}
        return {model: self._registry.production_version(model) for model in sorted(models)}

    def _rollouts_pending(self, triggers: Iterable[Trigger]) -> dict[str, str | None]:
        """The version on its way to production of each model an automatic trigger names, read now (as above).

        Raises:
            RegistryUnavailable: the registry cannot be read; nothing was decided.
        """
        models = {t.model for t in triggers if needs_rollout_state(t, self._policy)}
        return {model: self._registry.rollout_pending(model) for model in sorted(models)}

    def _decide(
        self,
        tx: StoreTransaction,
        trigger: Trigger,
        now: datetime,
        production: Mapping[str, str | None],
        rollouts: Mapping[str, str | None],
    ) -> Decided:
        state = tx.model_state(trigger.model) if trigger.model in self._policy.models else None
        if state is not None and trigger.model in production:
            state = replace(state, production_version=production[trigger.model])
        if state is not None and needs_rollout_state(trigger, self._policy):
            state = replace(state, rollout_pending=rollouts.get(trigger.model))
        verdict = decide(trigger, state or _NO_STATE, self._policy, now)
        run = None
        if verdict.starts_run:
            run = tx.create_run(new_run_id(now), self._launcher.kind, trigger, now)
        tx.add_trigger(now, trigger, verdict, run.id if run else None)
        active = state.active_run if state is not None and verdict.decision == "active_run" else None
        return Decided(trigger, verdict, run, active)

    def _count(self, decided: Decided) -> None:
        model = managed_model(decided.trigger.model, self._policy)
        self._metrics.triggers.labels(model, decided.trigger.source, decided.verdict.decision).inc()
        if decided.run is not None:
            self._metrics.active_runs.labels(decided.run.model).set(1)
        log.info(
            "trigger %s",
            decided.verdict.decision,
            extra={
                "model": decided.trigger.model,
                "source": decided.trigger.source,
                "reason": decided.verdict.reason,
                "run_id": decided.run.id if decided.run else None,
            },
        )

    def receive(self, payload: AlertmanagerWebhookV4) -> WebhookOutcome:
        """Store the notification's alert keys, decide its new alerts, start the runs they call for.

        Raises:
            StoreUnavailable: nothing was stored; the sender should deliver again.
            RegistryUnavailable: the production version could not be read; nothing was stored.
        """
        decided: list[Decided] = []
        duplicates = 0
        triggers = [trigger_from_alert(alert) for alert in payload.alerts]
        production = self._production_versions(triggers)
        rollouts = self._rollouts_pending(triggers)
        with self._store.write() as tx:
            now = self._clock()  # under the write lock: history times follow commit order
            for alert, trigger in zip(payload.alerts, triggers, strict=True):
                key = AlertKey(
                    managed_model(trigger.model, self._policy), alert.fingerprint, alert.startsAt, alert.status
                )
                if not tx.add_alert_key(key, now):
                    duplicates += 1
                    continue
                decided.append(self._decide(tx, trigger, now, production, rollouts))
        self._fault_at("after_store")
        for alert in payload.alerts:
            self._metrics.alerts_received.labels(alert.status).inc()
        for item in decided:
            self._count(item)
        for item in decided:
            if item.run is not None:
                self._launch(item.run)
        self._fault_at("after_launch")
        return WebhookOutcome(alerts=len(payload.alerts), duplicates=duplicates, decided=decided)

    def submit(self, trigger: Trigger) -> Decided:
        """Decide one trigger (schedule, data volume, manual), record it, start its run.

        Raises:
            StoreUnavailable: nothing was recorded.
            RegistryUnavailable: the trigger names a version and the registry cannot be read.
        """
        production = self._production_versions([trigger])
        rollouts = self._rollouts_pending([trigger])
        with self._store.write() as tx:
            decided = self._decide(tx, trigger, self._clock(), production, rollouts)
        self._count(decided)
        if decided.run is not None:
            self._launch(decided.run)
            decided = Decided(decided.trigger, decided.verdict, self._store.run(decided.run.id) or decided.run)
        return decided

    def request_run(self, model: str, reason: str) -> Decided:
        """A manual run (``POST /runs``): the active-run check applies, the cooldown does not."""
        return self.submit(manual_trigger(model, reason))

    def _fault_at(self, point: str) -> None:
        if self._fault is not None:
            self._fault(point)

    # Runs

    def _launch(self, run: RunRecord) -> None:
        with self._launching_lock:
            if run.id in self._launching:
                return
            self._launching.add(run.id)
        try:

            def record_started(external_id: str, command: str) -> None:
                if not self._store.mark_running(run.id, external_id, command, self._clock()):
                    raise _AlreadyStarted(run.id)

            self._launcher.start(run, record_started)
        except _AlreadyStarted:
            log.info("run %s was started by another attempt", run.id)
        except LaunchUnavailable as error:
            log.warning("run %s could not be started now; it stays pending: %s", run.id, error)
        except StoreUnavailable as error:
            log.warning("run %s could not be recorded as started; it stays pending: %s", run.id, error)
        except LaunchError as error:
            log.error("run %s cannot be started: %s", run.id, error)
            self._finish(run, "failed", None, str(error))
        finally:
            with self._launching_lock:
                self._launching.discard(run.id)

    def _finish(
        self,
        run: RunRecord,
        status: Finished,
        exit_code: int | None,
        detail: str,
        *,
        failed_step: str | None = None,
        error: str | None = None,
    ) -> None:
        finished_at = self._clock()
        if not self._store.finish_run(
            run.id, status, finished_at, exit_code=exit_code, detail=detail, failed_step=failed_step, error=error
        ):
            return
        self._metrics.runs_finished.labels(run.model, status).inc()
        self._metrics.active_runs.labels(run.model).set(0)
        log.info("run %s %s", run.id, status, extra={"model": run.model, "detail": detail, "failed_step": failed_step})
        result = self._registry.result(run, finished_at)
        if result is not None:
            self._store.set_result(run.id, result.version, result.promoted)

    def _follow(self, run: RunRecord, now: datetime) -> None:
        if run.status == "pending":
            self._launch(run)
            return
        with self._launching_lock:
            if run.id in self._launching:
                return
        try:
            progress = self._launcher.poll(run)
        except LaunchUnavailable as error:
            log.warning("cannot tell how run %s stands: %s", run.id, error)
            return
        if progress.state == "running":
            started = run.started_at or run.created_at
            if now - started > self._run_timeout:
                self._launcher.stop(run)
                self._finish(run, "failed", None, f"stopped after the run timeout ({self._run_timeout})")
            return
        if progress.state == "not_started":
            log.warning("run %s never started its pipeline (%s); starting it again", run.id, progress.detail)
            if self._store.mark_pending(run.id, progress.detail):
                fresh = self._store.run(run.id)
                if fresh is not None:
                    self._launch(fresh)
            return
        self._finish(
            run,
            progress.state,
            progress.exit_code,
            progress.detail,
            failed_step=progress.failed_step,
            error=progress.error,
        )

    # The background loop's work

    def tick(self) -> None:
        """Follow active runs, fire due schedules and the data-volume check, move rollouts on and watch
        promotions (never starting a run), refresh the gauges.

        Raises:
            StoreUnavailable: the database is down (the loop logs it and tries again next tick).
        """
        now = self._clock()
        for run in self._store.active_runs():
            self._follow(run, now)
        self._fire_schedules(now)
        self._check_data_volume(now)
        if self._rollouts is not None:
            for model in sorted(self._policy.models):
                self._rollouts.tick(model)
        self._refresh_gauges()

    def _fire_schedules(self, now: datetime) -> None:
        after, self._schedules_checked_at = self._schedules_checked_at, now
        for model, schedule in self._schedules.items():
            trigger = schedule_trigger(model, schedule, after, now)
            if trigger is not None:
                self.submit(trigger)

    def _check_data_volume(self, now: datetime) -> None:
        check = self._data_volume
        if check is None:
            return
        if self._data_volume_checked_at is not None and now - self._data_volume_checked_at < check.interval:
            return
        self._data_volume_checked_at = now
        for model in sorted(self._policy.models):
            trigger = data_volume_trigger(model, check.source.new_labelled_rows(model), check.threshold)
            if trigger is not None:
                self.submit(trigger)

    def _refresh_gauges(self) -> None:
        active = {run.model for run in self._store.active_runs()}
        for model in self._policy.models:
            self._metrics.active_runs.labels(model).set(1 if model in active else 0)
            promoted_at = self._registry.last_promotion(model)
            if promoted_at is not None:
                self._metrics.last_promotion.labels(model).set(promoted_at.timestamp())

    def close(self) -> None:
        self._launcher.close()
        if self._rollouts is not None:
            self._rollouts.close()
