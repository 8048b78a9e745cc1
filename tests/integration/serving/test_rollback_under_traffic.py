"""A bad promotion rolled back under live traffic, every part real: serving, monitoring, the controller,
Kafka, Prometheus with Berg's rules, and Alertmanager with the stack's routing.

``v0001`` serves. A deliberately bad challenger (``v0004``: a real booster whose registered test-window
scores it does not reproduce live, as a corrupted artefact would) is recorded as a candidate under the
``approval`` policy; the controller holds it for a person, the test approves it through the controller's
API, the controller promotes it and serving swaps. Monitoring measures the new version's score PSI against
its own test window, Prometheus scrapes it, and the controller's watch moves ``production`` back; serving
swaps back by itself. Scoring calls go on throughout: every one answers 2xx. The rollback raises exactly one
``ModelRolledBack`` alert and starts no pipeline run.

Both installed use cases run it: fraud over the serving tests' simulated store and its trained models, clicks
over its own Feast definitions (an empty online store: the impression itself and the defaults make its features)
and boosters over its feature columns. What differs between them is a ``ServedCase`` (the serving tests'
conftest); the test is one.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from berg.registry import ModelRegistry, VersionMetadata
from berg_app.stack.local import LocalStack
from berg_app.stack.monitoring_config import register_scrape_target, unregister_scrape_target
from berg_pipelines.runtime.profile import distribution_profile
from tests.helpers import wait_for
from tests.integration.serving.conftest import ServedCase, ServingProcess, create_topics
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

log = logging.getLogger(__name__)

TOKEN = "rollback-test-token"
BAD = "v0004"
MAX_PSI = 0.25
ROLLOUT = {
    "BERG_ROLLOUT_POLICY": "approval",
    "BERG_ROLLOUT_WATCH_WINDOW_MINUTES": "60",
    "BERG_ROLLOUT_WATCH_MAX_PREDICTION_PSI": str(MAX_PSI),
}
"""The controller's rollout: a person approves, then the watch (the card's quality margin needs labels)."""


@dataclass
class Traffic:
    """Scoring calls from a thread, one event each, until stopped: every answer's wall-clock time, status and
    version, in order."""

    url: str
    model: str
    events: list[dict[str, Any]]
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rollback-traffic", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            index = 0
            while not self._stop.is_set():
                event = {**self.events[index % len(self.events)], "event_id": str(uuid.uuid4())}
                index += 1
                try:
                    response = client.post(f"{self.url}/v1/models/{self.model}:predict", json={"instances": [event]})
                except httpx.HTTPError as error:
                    self.answers.append((time.time(), 0, type(error).__name__))
                    continue
                version = response.json()["predictions"][0]["model_version"] if response.status_code == 200 else None
                self.answers.append((time.time(), response.status_code, version))
                self._stop.wait(0.02)

    def versions_in_order(self) -> list[str | None]:
        """The versions that answered, each run of equal ones once."""
        runs: list[str | None] = []
        for _, _, version in list(self.answers):
            if not runs or runs[-1] != version:
                runs.append(version)
        return runs

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)


def _register_bad_challenger(registry: ModelRegistry, model: str, staging: Path) -> None:
    """``v0002``'s booster registered again with a test window of high scores it will not reproduce live."""
    template = registry.get(model, "v0002")
    folder = staging / "bad"
    folder.mkdir()
    shutil.copy(registry.local_path(model, "v0002") / "model.bst", folder / "model.bst")
    claimed = np.random.default_rng(4).beta(8, 2, 5000)
    metadata = VersionMetadata(
        metrics={"pr_auc": 0.9},
        reference_profile={"features": {}, "prediction": distribution_profile(claimed)},
        lineage=template.lineage,
        params=dict(template.params),
    )
    assert registry.register(model, folder, metadata).version == BAD


@pytest.fixture(scope="module")
def topics(served_case: ServedCase, stack: LocalStack) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    kinds = ("predictions", "shadow", "labels")
    names = {kind: f"rollback-{served_case.use_case}-{kind}-{suffix}" for kind in kinds}
    return create_topics(stack.settings.kafka_bootstrap, names)


@pytest.fixture(scope="module")
def parts(
    served_case: ServedCase,
    start_server: Any,
    stack: LocalStack,
    topics: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ModelRegistry, ServingProcess, ServiceProcess]]:
    root = tmp_path_factory.mktemp(f"rollback-{served_case.use_case}")
    path = served_case.registry(root / "registry")
    registry = ModelRegistry(path)
    _register_bad_challenger(registry, served_case.use_case, root)
    kafka = stack.settings.kafka_bootstrap
    monitoring = ServiceProcess(
        "berg_monitoring",
        "BERG_MONITORING_",
        {
            "KAFKA__BOOTSTRAP_SERVERS": kafka,
            "MODEL_NAME": served_case.use_case,
            "REGISTRY_URI": str(path),
            "PREDICTIONS_TOPIC": topics["predictions"],
            "SHADOW_PREDICTIONS_TOPIC": topics["shadow"],
            "LABELS_TOPIC": topics["labels"],
            "RECOMPUTE_INTERVAL_S": "0.5",
            "REGISTRY_POLL_S": "0.5",
            # The calls' events span minutes of event time, not the whole days drift is measured over by default.
            "DRIFT_CYCLE_S": "0",
            "LOGGING__JSON_FORMAT": "false",
        },
        root,
        f"monitoring-rollback-{served_case.use_case}",
        environment={"BERG_USE_CASE": served_case.use_case},
    )
    controller = ServiceProcess(
        "berg_controller",
        "BERG_CONTROLLER_",
        {
            "REGISTRY_URI": str(path),
            "STATE_DIR": str(root / "controller"),
            "WEBHOOK_TOKEN": TOKEN,
            "PROMETHEUS_URL": f"http://127.0.0.1:{stack.settings.ports.prometheus}",
            "POLL_INTERVAL_S": "1",
            "LOGGING__JSON_FORMAT": "false",
        },
        root,
        f"controller-rollback-{served_case.use_case}",
        environment={**ROLLOUT, "BERG_USE_CASE": served_case.use_case},
    )
    server = start_server(
        "fused",
        served_case.world,
        path,
        wait=False,
        KAFKA__BOOTSTRAP_SERVERS=kafka,
        PREDICTION_LOG__ENABLED="true",
        PREDICTION_LOG__TOPIC=topics["predictions"],
        SHADOW__TOPIC=topics["shadow"],
    )
    scraped: list[str] = []
    try:
        monitoring.start()
        controller.start()
        for process in (monitoring, controller):
            process.wait_ready(600)  # only bounds a hang: a loaded machine imports these for minutes
            assert process.alive(), process.log_tail()
        for process, service in ((monitoring, "monitoring"), (controller, "controller")):
            register_scrape_target(stack.layout, process.name, f"127.0.0.1:{process.port}", {"service": service})
            scraped.append(process.name)
        server.wait_ready()
        yield registry, server, controller
    finally:
        for name in scraped:
            unregister_scrape_target(stack.layout, name)
        # Serving too: the next served_case's parts start while this module's server fixture still holds this one.
        for process in (controller, monitoring, server):
            if process.alive():
                assert process.stop(60) == 0, process.log_tail()


def _alerts(stack: LocalStack, alertname: str, model: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{stack.settings.ports.alertmanager}/api/v2/alerts"
    found = httpx.get(url, params={"filter": f'alertname="{alertname}"'}, timeout=10).json()
    return [alert for alert in found if alert["labels"].get("model") == model]


def _first_breach(stack: LocalStack, model: str, since: float) -> datetime | None:
    """When Prometheus first scraped the bad version's score PSI above the watch's limit.

    Its raw samples, not a query_range's steps: the series goes once the version is rolled back, so the breach
    may be a single scrape, which a grid of steps can fall either side of.
    """
    url = f"http://127.0.0.1:{stack.settings.ports.prometheus}/api/v1/query"
    span = math.ceil(time.time() - since) + 1
    query = f'berg_monitoring_prediction_psi{{model="{model}",version="{BAD}"}}[{span}s]'
    body = httpx.get(url, params={"query": query}, timeout=10).json()
    samples = [(float(at), float(value)) for series in body["data"]["result"] for at, value in series["values"]]
    stamps = [at for at, value in samples if value > MAX_PSI]
    return datetime.fromtimestamp(min(stamps)).astimezone() if stamps else None


@pytest.mark.timeout(1800)  # only bounds a hang: three services and a rollback on a loaded machine
def test_an_approved_bad_challenger_is_rolled_back_under_traffic_without_a_failed_call(
    parts: tuple[ModelRegistry, ServingProcess, ServiceProcess], served_case: ServedCase, stack: LocalStack
) -> None:
    registry, server, controller = parts
    model = served_case.use_case
    api = httpx.Client(base_url=f"http://127.0.0.1:{controller.port}", timeout=30)
    traffic = Traffic(server.url, model, served_case.events(200, 11))
    started = time.time()
    traffic.start()
    try:
        wait_for(lambda: any(version == "v0001" for _, _, version in traffic.answers), 300, "v0001 to answer")
        registry.record_rollout(model, BAD, "candidate", actor="rollback-test", reason="forced", policy="approval")
        wait_for(
            lambda: [version for version, _ in registry.pending_approval(model)] == [BAD],
            300,
            f"the controller to hold {BAD} for approval",
        )
        approval = api.post(
            f"/rollouts/{model}/{BAD}/approve",
            json={"by": "alice", "reason": "forced through for the rollback test"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert approval.status_code < 300, approval.text
        wait_for(lambda: BAD in traffic.versions_in_order(), 300, f"serving to swap to {BAD}")
        wait_for(
            lambda: traffic.versions_in_order()[-1] == "v0001" and BAD in traffic.versions_in_order(),
            600,
            "the watch to roll back and serving to swap back to v0001",
        )
        wait_for(lambda: len(_alerts(stack, "ModelRolledBack", model)) >= 1, 300, "ModelRolledBack in Alertmanager")
    finally:
        traffic.stop()
    # Zero failed calls across both swaps; v0001, then the bad version, then v0001 again.
    failed = [(status, version) for _, status, version in traffic.answers if status != 200]
    assert failed == [], failed[:5]
    assert traffic.versions_in_order() == ["v0001", BAD, "v0001"]
    moves = registry.history(model, "production")
    assert [(move.action, move.version) for move in moves[-2:]] == [("promote", BAD), ("rollback", "v0001")]
    steps = registry.rollout_history(model, BAD)
    assert [step.action for step in steps] == ["candidate", "awaiting_approval", "approved", "promoted", "rolled_back"]
    approved = steps[2]
    assert (approved.actor, approved.reason) == ("alice", "forced through for the rollback test")
    assert steps[-1].reason, steps[-1]
    # One alert for a person; no retraining run started by it.
    assert len(_alerts(stack, "ModelRolledBack", model)) == 1
    assert api.get("/runs", params={"model": model}).json() == []
    api.close()
    # The figures for the record: breach (Prometheus first held the PSI above the limit) -> rolled back ->
    # the old version answering again.
    last_bad = max(index for index, (_, _, version) in enumerate(traffic.answers) if version == BAD)
    served_again = datetime.fromtimestamp(traffic.answers[last_bad + 1][0]).astimezone()
    breach, rolled_back = _first_breach(stack, model, started), steps[-1].at
    assert breach is not None, "Prometheus never held the bad version's PSI above the limit"
    log.warning(
        f"rollback ({model}): {steps[-1].reason}\nbreach seen {breach:%H:%M:%S}, rolled back "
        f"{(rolled_back - breach).total_seconds():.1f} s later, v0001 answering again "
        f"{(served_again - breach).total_seconds():.1f} s after the breach; {len(traffic.answers)} calls, all 200"
    )
