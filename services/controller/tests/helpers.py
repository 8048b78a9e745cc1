"""Builders of Alertmanager payloads, an Alertmanager-style sender, and the controller run in-process."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from berg.registry import ModelRegistry
from berg.web.app import WebSettings
from berg.web.server import BackgroundServer
from berg_controller.app import create_controller_app
from berg_controller.controller import Controller
from berg_controller.launchers import Progress, RecordStarted
from berg_controller.metrics import ControllerMetrics
from berg_controller.policy import DEFAULT_TRIGGER_ALERTS, PolicyConfig
from berg_controller.results import RegistryView
from berg_controller.settings import ControllerSettings, LocalLauncherSettings
from berg_controller.store import ControllerStore, RunRecord

__all__ = [
    "FAKE_PIPELINE",
    "TOKEN",
    "FakeLauncher",
    "InProcessController",
    "alert",
    "build_controller",
    "count_starts",
    "deliver",
    "fake_pipeline_command",
    "kill_fake_pipelines",
    "running_controller",
    "settings_for",
    "webhook",
]

TOKEN = "test-webhook-token-0123456789"
FAKE_PIPELINE = Path(__file__).with_name("fake_pipeline.py")
_T0 = datetime(2026, 1, 1, tzinfo=UTC)
_fingerprints = itertools.count(1)


def alert(
    model: str | None = "fraud",
    alertname: str = "FeatureDriftHigh",
    *,
    status: str = "firing",
    fingerprint: str | None = None,
    starts_at: datetime | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One alert as Alertmanager sends it (a fresh fingerprint unless given)."""
    all_labels = {"alertname": alertname, "severity": "warning", **labels}
    if model is not None:
        all_labels["model"] = model
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"{alertname} on {model}"},
        "startsAt": (starts_at or _T0).isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else (starts_at or _T0).isoformat(),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint or f"{next(_fingerprints):016x}",
    }


def webhook(*alerts: Mapping[str, Any]) -> dict[str, Any]:
    """A version 4 notification holding ``alerts``."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}/{}:{alertname="FeatureDriftHigh"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "berg-controller",
        "groupLabels": {"alertname": "FeatureDriftHigh"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


@dataclass
class Delivery:
    response: httpx.Response
    attempts: int
    failures: int
    """Attempts answered 5xx (or not answered at all)."""


def deliver(
    client: httpx.Client,
    url: str,
    payload: Mapping[str, Any],
    *,
    token: str = TOKEN,
    timeout_s: float = 60,
    on_failure: Callable[[], None] | None = None,
) -> Delivery:
    """POST like Alertmanager's webhook notifier: retry 5xx and network errors with backoff, never a 4xx."""
    deadline = time.monotonic() + timeout_s
    backoff, attempts, failures = 0.05, 0, 0
    while True:
        attempts += 1
        try:
            response = client.post(f"{url}/alerts", json=payload, headers={"Authorization": f"Bearer {token}"})
            if response.status_code < 500:
                return Delivery(response, attempts, failures)
        except httpx.TransportError:
            pass
        failures += 1
        if on_failure is not None:
            on_failure()
        if time.monotonic() > deadline:
            raise AssertionError(f"not delivered within {timeout_s}s after {attempts} attempts")
        time.sleep(backoff)
        backoff = min(backoff * 2, 1.0)


def fake_pipeline_command(
    starts: Path, *, sleep_s: float = 0.0, exit_code: int = 0, register: bool = False
) -> list[str]:
    """The local launcher's command for the fake pipeline (``{python}``, ``{model}``, ``{run_id}`` filled in)."""
    return [
        "{python}", str(FAKE_PIPELINE),
        "--starts", str(starts),
        "--model", "{model}",
        "--run-id", "{run_id}",
        "--sleep", str(sleep_s),
        "--exit-code", str(exit_code),
        *(["--register"] if register else []),
    ]  # fmt: skip


def count_starts(starts: Path, model: str | None = None) -> int:
    """How often the fake pipeline really ran (for ``model``)."""
    if not starts.exists():
        return 0
    lines = [line.split() for line in starts.read_text().splitlines() if line.strip()]
    return sum(1 for line in lines if model is None or line[1] == model)


def kill_fake_pipelines(starts: Path) -> None:
    """Kill every fake pipeline recorded in ``starts`` that still runs (a test's clean-up)."""
    if not starts.exists():
        return
    for line in starts.read_text().splitlines():
        with contextlib.suppress(ProcessLookupError, PermissionError, IndexError, ValueError):
            os.kill(int(line.split()[2]), signal.SIGKILL)


def settings_for(
    tmp_path: Path, *, sleep_s: float = 0.0, exit_code: int = 0, register: bool = False, **overrides: Any
) -> ControllerSettings:
    """Settings of a controller under ``tmp_path`` whose pipeline is the fake one."""
    values: dict[str, Any] = {
        "webhook_token": TOKEN,
        "state_dir": tmp_path / "controller",
        "registry_uri": str(tmp_path / "registry"),
        "web": WebSettings(port=0),
        "poll_interval_s": 0.2,
        "cooldown_s": 600.0,
        "local": LocalLauncherSettings(
            command=fake_pipeline_command(
                tmp_path / "starts.txt", sleep_s=sleep_s, exit_code=exit_code, register=register
            )
        ),
    }
    values.update(overrides)
    return ControllerSettings(**values)


@dataclass
class InProcessController:
    """The controller's app on uvicorn in this process."""

    url: str
    controller: Controller
    settings: ControllerSettings
    client: httpx.Client

    def runs(self, model: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": 1000, **({"model": model} if model else {})}
        response = self.client.get(f"{self.url}/runs", params=params)
        response.raise_for_status()
        return list(response.json())

    def triggers(self, limit: int = 1000) -> list[dict[str, Any]]:
        response = self.client.get(f"{self.url}/triggers", params={"limit": limit})
        response.raise_for_status()
        return list(response.json())

    def wait_finished(self, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Every run, once none is pending or running."""
        deadline = time.monotonic() + timeout_s
        while True:
            runs = self.runs()
            if all(run["status"] in ("succeeded", "failed") for run in runs):
                return runs
            if time.monotonic() > deadline:
                raise AssertionError(f"runs still active after {timeout_s}s: {runs}")
            time.sleep(0.1)

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        text = self.client.get(f"{self.url}/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    return float(sample.value)
        return 0.0


@contextmanager
def running_controller(settings: ControllerSettings) -> Iterator[InProcessController]:
    """The real app (store, launcher, loop) on uvicorn in a background thread, stopped at the end."""
    app = create_controller_app(settings)
    server = BackgroundServer(app, settings.web)
    server.start()
    try:
        with httpx.Client(timeout=30) as client:
            yield InProcessController(f"http://127.0.0.1:{server.port}", app.state.controller, settings, client)
    finally:
        server.stop()


class FakeLauncher:
    """Records starts; every run stays ``running`` until a test sets its progress."""

    kind = "local"

    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.progress: dict[str, Progress] = {}
        self._lock = threading.Lock()

    def start(self, run: RunRecord, record_started: RecordStarted) -> str:
        external = f"fake-{run.id}"
        record_started(external, f"fake pipeline for {run.model}")
        with self._lock:
            self.started.append(run.id)
        return external

    def poll(self, run: RunRecord) -> Progress:
        return self.progress.get(run.id, Progress("running"))

    def stop(self, run: RunRecord) -> None:
        self.stopped.append(run.id)

    def close(self) -> None:
        pass


def build_controller(
    store: ControllerStore,
    launcher: FakeLauncher,
    registry_dir: Path,
    *,
    models: Sequence[str] = ("fraud",),
    cooldown: timedelta = timedelta(minutes=30),
    clock: Callable[[], datetime] | None = None,
    **kwargs: Any,
) -> Controller:
    """A controller over ``store`` with a fake launcher and an empty registry."""
    metrics = ControllerMetrics.register(CollectorRegistry(), models)
    policy = PolicyConfig(frozenset(models), frozenset(DEFAULT_TRIGGER_ALERTS), cooldown)
    view = RegistryView(ModelRegistry(registry_dir))
    if clock is not None:
        kwargs["clock"] = clock
    return Controller(store, launcher, policy, metrics, view, **kwargs)
