"""Assemble the controller from its settings: store, launcher, policy, metrics, routes and the background loop.

Example:
    >>> settings = load_settings(ControllerSettings)
    >>> app = create_controller_app(settings, settings.managed_models(use_case.name))
    >>> uvicorn.run(app, host=settings.web.host, port=settings.web.port)
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from berg.observability.health import ReadinessChecks
from berg.problem.card import RolloutSpec
from berg.registry import ModelRegistry
from berg.web.app import create_app
from berg_controller.api import controller_routes
from berg_controller.auth import BearerToken
from berg_controller.controller import Controller, DataVolumeCheck, FaultHook
from berg_controller.data_volume import PrometheusDataVolume
from berg_controller.launchers import Launcher
from berg_controller.launchers.kfp import KfpLauncher, pipeline_arguments
from berg_controller.launchers.local import LocalLauncher, child_environment
from berg_controller.loop import BackgroundLoop
from berg_controller.metrics import ControllerMetrics
from berg_controller.policy import PolicyConfig
from berg_controller.private_files import make_private_dirs
from berg_controller.prometheus import PrometheusClient
from berg_controller.results import RegistryView
from berg_controller.rollout_driver import RolloutDriver
from berg_controller.settings import ControllerSettings
from berg_controller.signals import PrometheusRolloutSignals
from berg_controller.store import ControllerStore

__all__ = ["build_launcher", "create_controller_app"]

log = logging.getLogger(__name__)


def _local_uri(uri: str) -> str:
    """A registry path made absolute (the pipeline may run elsewhere); URIs unchanged."""
    return uri if "://" in uri else str(Path(uri).absolute())


def build_launcher(settings: ControllerSettings, rollout: RolloutSpec | None = None) -> Launcher:
    """The launcher the settings name; a Kubeflow run is given ``rollout``'s policy (``rollout_policy``), so
    its register step follows the controller's (a local run inherits ``BERG_ROLLOUT_*``)."""
    if settings.launcher == "kfp":
        kfp = settings.kfp
        steps_registry = kfp.registry_uri or settings.registry_uri
        arguments = {**({"rollout_policy": rollout.policy_name} if rollout is not None else {}), **kfp.arguments}
        return KfpLauncher(
            kfp.host,
            kfp.pipeline_package,
            kfp.experiment,
            lambda model: pipeline_arguments(model, kfp.offline_root, steps_registry, arguments),
            request_timeout_s=kfp.request_timeout_s,
        )
    local = settings.local
    extra = {"BERG_REGISTRY_URI": _local_uri(settings.registry_uri)}
    if local.state_dir is not None:
        extra["BERG_STATE_DIR"] = str(local.state_dir.absolute())
    extra.update(local.env)
    return LocalLauncher(
        settings.state_dir / "runs", [*local.command, *local.args], child_environment(os.environ, extra)
    )


def _fault_hook(settings: ControllerSettings) -> FaultHook | None:
    point = settings.fault_kill_point
    if point == "none":
        return None

    def kill_here(reached: str) -> None:
        if reached == point:
            log.warning("fault injection: killing this process at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)

    return kill_here


def _build_rollouts(
    settings: ControllerSettings, models: Sequence[str], metrics: ControllerMetrics, rollout: RolloutSpec
) -> RolloutDriver:
    signals = None
    if settings.prometheus_url:
        signals = PrometheusRolloutSignals(PrometheusClient(settings.prometheus_url, settings.prometheus_timeout_s))
    elif rollout.watch.window_minutes > 0:
        log.warning("no prometheus_url (BERG_CONTROLLER_PROMETHEUS_URL): promotions are not watched, never rolled back")
    driver = RolloutDriver(ModelRegistry(settings.registry_uri), rollout, metrics, signals, _utc_now)
    driver.restore_gauges(models)
    return driver


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _build_controller(
    settings: ControllerSettings,
    models: Sequence[str],
    metrics: ControllerMetrics,
    store: ControllerStore,
    rollout: RolloutSpec,
) -> Controller:
    data_volume = None
    if settings.data_volume.prometheus_url:
        data_volume = DataVolumeCheck(
            PrometheusDataVolume(settings.data_volume.prometheus_url, settings.data_volume.timeout_s),
            settings.data_volume.threshold,
            timedelta(seconds=settings.data_volume.interval_s),
        )
    return Controller(
        store,
        build_launcher(settings, rollout),
        PolicyConfig(
            models=frozenset(models),
            trigger_alerts=frozenset(settings.trigger_alerts),
            cooldown=timedelta(seconds=settings.cooldown_s),
        ),
        metrics,
        RegistryView(ModelRegistry(settings.registry_uri)),
        schedules=settings.cron_schedules(),
        data_volume=data_volume,
        rollouts=_build_rollouts(settings, models, metrics, rollout),
        run_timeout=timedelta(seconds=settings.run_timeout_s),
        fault=_fault_hook(settings),
    )


def create_controller_app(
    settings: ControllerSettings, models: Sequence[str], rollout: RolloutSpec | None = None
) -> FastAPI:
    """The controller's app retraining ``models`` (:meth:`ControllerSettings.managed_models`): opens the database
    now; the lifespan runs a first round (recovery) and the loop.

    ``rollout`` is the effective rollout of the use case's card (``BERG_ROLLOUT_*`` applied); None: the
    card's defaults (``offline``, watched).

    Raises:
        StoreUnavailable: the database cannot be reached.
    """
    make_private_dirs(settings.state_dir)
    store = ControllerStore.open(settings.effective_database_url, timeout_s=settings.database_timeout_s)
    registry = CollectorRegistry()
    metrics = ControllerMetrics.register(registry, models)
    controller = _build_controller(settings, models, metrics, store, rollout or RolloutSpec())
    loop = BackgroundLoop(controller.tick, settings.poll_interval_s)
    readiness = ReadinessChecks()
    stale_after_s = 3 * settings.poll_interval_s + 30
    readiness.add("background_loop", lambda: loop.healthy(stale_after_s))
    app = create_app(settings.web, title="berg-controller", registry=registry, readiness=readiness)
    app.include_router(controller_routes(controller, BearerToken(settings.webhook_secret())))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Recovery before the first request: pending runs are started, running ones adopted.
        await anyio.to_thread.run_sync(loop.run_once)
        loop.start()
        log.info("controller ready", extra={"models": list(models), "launcher": settings.launcher})
        try:
            yield
        finally:
            readiness.drain()
            await anyio.to_thread.run_sync(loop.stop)
            controller.close()
            store.close()
            log.info("controller stopped; runs in progress keep going")

    app.router.lifespan_context = lifespan
    app.state.controller = controller
    return app
