"""Builders of Alertmanager payloads, an Alertmanager-style sender, the controller run in-process, and the real
Alertmanager (the Debian package's binary) as a child process."""

from __future__ import annotations

import contextlib
import itertools
import json
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
import yaml
from prometheus_client import CollectorRegistry

from berg.problem.card import RolloutSpec
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
    "ALERTMANAGER",
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
    "register_versions",
    "running_alertmanager",
    "running_controller",
    "settings_for",
    "webhook",
]

TOKEN = "test-webhook-token-0123456789"
ALERTMANAGER = "prometheus-alertmanager"
"""The real Alertmanager's binary (Debian's package; ``scripts/bootstrap.sh`` installs it)."""
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


def register_versions(registry_dir: Path, model: str, count: int, production: str | None) -> list[str]:
    """Register ``count`` versions of ``model`` in a real registry folder and promote each in turn up to
    ``production`` (the history a promotion leaves: the earlier champions are retired)."""
    from berg.registry import Lineage, VersionMetadata

    # An hour ago, so no version is taken for the result of a run a test starts now (results.match_result).
    end = datetime.now(UTC) - timedelta(hours=1)
    registry = ModelRegistry(registry_dir, clock=lambda: end)
    lineage = Lineage(
        data_start=end - timedelta(days=30),
        data_end=end,
        feature_service="fraud_model_v1",
        pipeline_run_id="test",
        code_version="test",
    )
    versions = [
        registry.register(model, {"model.bst": b"not really xgboost"}, VersionMetadata(lineage=lineage)).version
        for _ in range(count)
    ]
    for version in versions[: versions.index(production) + 1] if production is not None else []:
        registry.promote(model, version, reason="test history")
    return versions


def fake_pipeline_command(
    starts: Path,
    *,
    sleep_s: float = 0.0,
    exit_code: int = 0,
    register: bool = False,
    output: Sequence[str] = (),
    fail_step: str = "",
    error: str = "",
    hold: Path | None = None,
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
        *[f"--output={line}" for line in output],
        *(["--fail-step", fail_step, "--error", error] if fail_step else []),
        *(["--hold", str(hold)] if hold is not None else []),
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


@contextmanager
def controller_process(tmp_path: Path, *, sleep_s: float, hold: Path | None = None, **settings: str) -> Iterator[Any]:
    """The controller as a process (``tests.processes.ServiceProcess``, not started yet) with the fake
    pipeline (held until ``hold`` exists, when given) and a long cooldown; killed, with its pipelines, at the
    end."""
    from tests.processes import ServiceProcess  # the repo's tests package: see running_alertmanager

    starts = tmp_path / "starts.txt"
    environment = {
        "STATE_DIR": str(tmp_path / "controller"),
        "REGISTRY_URI": str(tmp_path / "registry"),
        "LOCAL__COMMAND": json.dumps(fake_pipeline_command(starts, sleep_s=sleep_s, hold=hold)),
        "POLL_INTERVAL_S": "0.2",
        "COOLDOWN_S": "600",
        "LOGGING__JSON_FORMAT": "false",
        **settings,
    }
    process = ServiceProcess("berg_controller", "BERG_CONTROLLER_", environment, tmp_path, "controller")
    try:
        yield process
    finally:
        process.kill9()
        kill_fake_pipelines(starts)


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

    def wait_finished(self, stall_s: float = 120) -> list[dict[str, Any]]:
        """Every run, once none is pending or running; fails only when no run changed its state for ``stall_s``."""
        from tests.helpers import wait_for_progress  # see running_alertmanager

        seen: list[list[dict[str, Any]]] = []

        def finished() -> bool:
            seen.append(self.runs())
            return all(run["status"] in ("succeeded", "failed") for run in seen[-1])

        def states() -> list[tuple[str, str]]:
            return [(run["id"], run["status"]) for run in self.runs()]

        wait_for_progress(finished, states, "every run to finish", stall_s=stall_s)
        return seen[-1]

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        text = self.client.get(f"{self.url}/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    return float(sample.value)
        return 0.0


@contextmanager
def running_controller(
    settings: ControllerSettings, rollout: RolloutSpec | None = None
) -> Iterator[InProcessController]:
    """The real app (store, launcher, loop) on uvicorn in a background thread, stopped at the end."""
    app = create_controller_app(settings, settings.managed_models("fraud"), rollout)
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


@contextmanager
def running_alertmanager(
    directory: Path,
    webhook_url: str,
    token_file: Path,
    *,
    group_wait: str = "0s",
    group_interval: str = "1s",
    group_by: Sequence[str] = ("alertname", "model"),
) -> Iterator[str]:
    """The real Alertmanager on a free port, every alert routed to ``webhook_url``; its API's URL, stopped at the end.

    Like production it sends resolved alerts too and a bearer token read from ``token_file``
    (``credentials_file``). Config, storage and log live under ``directory``; no cluster.
    """
    # Imported here, not above: the unit tests that import this module must also collect on their own
    # (``pytest services/controller/tests/test_api.py``), where ``tests`` is this package, not the root's.
    from tests.helpers import free_port
    from tests.servers import running_http_server

    config = {
        "route": {
            "receiver": "berg-controller",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "berg-controller",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}},
                    }
                ],
            }
        ],
    }
    config_file = directory / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    arguments = [
        f"--config.file={config_file}",
        f"--storage.path={directory / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with running_http_server(ALERTMANAGER, arguments, directory / "alertmanager.log", f"{url}/-/ready"):
        yield url
