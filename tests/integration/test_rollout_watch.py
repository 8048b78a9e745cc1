"""A rollout end to end with a real Prometheus and Alertmanager: shadow, approval, rejection, and a rollback.

The test serves the monitoring exporter's gauges (exact names and labels) from a
prometheus_client registry it sets by hand; a real Prometheus scrapes them and the
controller, evaluates Berg's rule file and alerts a real Alertmanager running the
stack's own routing. The controller runs in this process with its real store,
registry and loop, and reads Prometheus' query API like in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from services.controller.tests.helpers import (
    TOKEN,
    InProcessController,
    register_versions,
    running_controller,
    settings_for,
)

from berg.problem.card import RolloutSpec
from berg.registry import ModelRegistry
from berg.usecase import resolve_use_case
from berg_app.stack.layout import StateLayout
from berg_app.stack.monitoring_config import (
    ONCALL_RECEIVER,
    alert_rules,
    alertmanager_config,
    ensure_controller_token,
    write_yaml,
)
from berg_app.stack.settings import PortTable, StackSettings
from tests.helpers import free_port, wait_for
from tests.servers import running_http_server

pytestmark = pytest.mark.integration

USE_CASES = ("fraud", "clicks")
"""Each installed use case's model, under its own card's rollout with the stages and numbers below."""
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROLLOUT_OVERRIDES = RolloutSpec.model_validate(
    {
        "policy": "shadow+approval",
        "shadow": {"min_predictions": 100, "min_labelled": 10, "max_quality_drop": 0.02},
        "watch": {"window_minutes": 60, "max_prediction_psi": 0.25, "max_quality_drop": 0.1},
    }
)
PAIR = ["model", "champion_version", "shadow_version"]


@dataclass
class MonitoringGauges:
    """The monitoring exporter's rollout gauges, set by the test and scraped by Prometheus."""

    address: str
    model: str
    predictions: Gauge
    labelled: Gauge
    pr_auc: Gauge
    prediction_psi: Gauge

    def shadow(self, champion: str, shadow: str, *, champion_pr_auc: float, shadow_pr_auc: float) -> None:
        self.predictions.labels(self.model, champion, shadow).set(150)
        self.labelled.labels(self.model, champion, shadow).set(20)
        self.pr_auc.labels(self.model, champion, shadow, "champion").set(champion_pr_auc)
        self.pr_auc.labels(self.model, champion, shadow, "shadow").set(shadow_pr_auc)


@pytest.fixture(params=USE_CASES)
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gauges(model: str) -> Iterator[MonitoringGauges]:
    registry = CollectorRegistry()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield MonitoringGauges(
            address=f"127.0.0.1:{server.server_port}",
            model=model,
            predictions=Gauge("berg_monitoring_shadow_predictions", "", PAIR, registry=registry),
            labelled=Gauge("berg_monitoring_shadow_labelled", "", PAIR, registry=registry),
            pr_auc=Gauge("berg_monitoring_shadow_pr_auc", "", [*PAIR, "role"], registry=registry),
            prediction_psi=Gauge("berg_monitoring_prediction_psi", "", ["model", "version"], registry=registry),
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class Observability:
    prometheus: str
    alertmanager: str


@contextmanager
def prometheus_and_alertmanager(
    directory: Path, gauges: MonitoringGauges, prometheus_port: int, controller_port: int
) -> Iterator[Observability]:
    """Prometheus (1 s scrapes and rule evaluations, Berg's rule file) and Alertmanager with the stack's routes."""
    alertmanager_port = free_port()
    settings = StackSettings(
        state_dir=directory, ports=PortTable(controller=controller_port, alertmanager=alertmanager_port)
    )
    layout = StateLayout.at(directory)
    layout.create()
    ensure_controller_token(layout)
    write_yaml(layout.alertmanager_file, alertmanager_config(settings, layout))
    rules = directory / "berg.rules.yml"
    rules.write_bytes(alert_rules().read_bytes())
    prometheus_file = directory / "prometheus.yml"
    prometheus_file.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
                "scrape_configs": [
                    {"job_name": "monitoring", "static_configs": [{"targets": [gauges.address]}]},
                    {"job_name": "controller", "static_configs": [{"targets": [f"127.0.0.1:{controller_port}"]}]},
                ],
            }
        )
    )
    alertmanager = f"http://127.0.0.1:{alertmanager_port}"
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    am_arguments = [
        f"--config.file={layout.alertmanager_file}",
        f"--storage.path={directory / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{alertmanager_port}",
        "--cluster.listen-address=",
    ]
    prometheus_arguments = [
        f"--config.file={prometheus_file}",
        f"--storage.tsdb.path={directory / 'prometheus'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ]
    with (
        running_http_server(
            "prometheus-alertmanager", am_arguments, directory / "alertmanager.log", f"{alertmanager}/-/ready"
        ),
        running_http_server("prometheus", prometheus_arguments, directory / "prometheus.log", f"{prometheus}/-/ready"),
    ):
        yield Observability(prometheus, alertmanager)


@dataclass
class Setup:
    model: str
    controller: InProcessController
    registry: ModelRegistry
    gauges: MonitoringGauges
    observability: Observability


@pytest.fixture
def setup(tmp_path: Path, gauges: MonitoringGauges, model: str) -> Iterator[Setup]:
    register_versions(tmp_path / "registry", model, 4, production="v0001")
    prometheus_port = free_port()
    settings = settings_for(tmp_path, prometheus_url=f"http://127.0.0.1:{prometheus_port}", models=[model])
    # The use case's own card, with the test's stages and numbers (BERG_ROLLOUT_* would do the same).
    rollout = resolve_use_case(model).card.rollout.model_copy(
        update={name: getattr(ROLLOUT_OVERRIDES, name) for name in ("policy", "shadow", "watch")}
    )
    with running_controller(settings, rollout) as controller:
        port = int(controller.url.rsplit(":", 1)[1])
        with prometheus_and_alertmanager(tmp_path / "observability", gauges, prometheus_port, port) as observability:
            yield Setup(model, controller, ModelRegistry(tmp_path / "registry"), gauges, observability)


def actions(setup: Setup, version: str) -> list[str]:
    return [event.action for event in setup.registry.rollout_history(setup.model, version)]


def alias(setup: Setup, name: str) -> str | None:
    move = setup.registry.alias(setup.model, name)
    return None if move is None else move.version


def review(setup: Setup, version: str, verdict: str, by: str, reason: str) -> None:
    url = f"{setup.controller.url}/rollouts/{setup.model}/{version}/{verdict}"
    response = setup.controller.client.post(url, json={"by": by, "reason": reason}, headers=AUTH)
    assert response.status_code == 200, response.text


def firing(setup: Setup, alertname: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{setup.observability.prometheus}/api/v1/alerts", timeout=5).json()
    return [
        alert
        for alert in body["data"]["alerts"]
        if alert["labels"]["alertname"] == alertname and alert["state"] == "firing"
    ]


def in_alertmanager(setup: Setup, alertname: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{setup.observability.alertmanager}/api/v2/alerts", timeout=5).json()
    return [alert for alert in alerts if alert["labels"].get("alertname") == alertname]


def test_shadow_approval_rejection_and_a_rollback_with_a_real_prometheus(setup: Setup) -> None:
    registry, gauges, model = setup.registry, setup.gauges, setup.model

    # Shadow, then approval: the candidate is scored beside the champion and waits for a person.
    registry.record_rollout(model, "v0002", "candidate", actor="pipeline", policy="shadow+approval", reason="gate")
    wait_for(lambda: alias(setup, "shadow") == "v0002", 30, "v0002 to enter its shadow stage")
    assert actions(setup, "v0002") == ["candidate", "shadow_started"]
    gauges.shadow("v0001", "v0002", champion_pr_auc=0.80, shadow_pr_auc=0.81)
    wait_for(lambda: actions(setup, "v0002")[-1] == "awaiting_approval", 60, "v0002 to wait for approval")
    assert actions(setup, "v0002") == ["candidate", "shadow_started", "shadow_passed", "awaiting_approval"]
    assert alias(setup, "production") == "v0001"

    review(setup, "v0002", "approve", "alice", "shadow holds up; ship it")
    wait_for(lambda: actions(setup, "v0002")[-1] == "promoted", 30, "v0002 to be promoted")
    assert alias(setup, "production") == "v0002"
    assert alias(setup, "shadow") is None
    approved = registry.rollout_history(model, "v0002")[-2]
    assert (approved.action, approved.actor, approved.reason) == ("approved", "alice", "shadow holds up; ship it")

    # Rejection: production stays.
    registry.record_rollout(model, "v0003", "candidate", actor="pipeline", policy="shadow+approval", reason="gate")
    gauges.shadow("v0002", "v0003", champion_pr_auc=0.81, shadow_pr_auc=0.815)
    wait_for(lambda: actions(setup, "v0003")[-1] == "awaiting_approval", 60, "v0003 to wait for approval")
    review(setup, "v0003", "reject", "bob", "not during the sale")
    wait_for(lambda: alias(setup, "shadow") is None, 30, "the shadow alias to be free again")
    rejected = registry.rollout_history(model, "v0003")[-1]
    assert (rejected.action, rejected.actor, rejected.reason) == ("rejected", "bob", "not during the sale")
    assert alias(setup, "production") == "v0002"

    # A bad promotion: v0002's live scores drift from its own test window within the watch.
    gauges.prediction_psi.labels(model, "v0002").set(0.6)
    wait_for(lambda: alias(setup, "production") == "v0001", 60, "the watch to roll v0002 back")
    wait_for(lambda: len(firing(setup, "ModelRolledBack")) > 0, 60, "ModelRolledBack to fire in Prometheus")
    wait_for(lambda: len(in_alertmanager(setup, "ModelRolledBack")) > 0, 60, "ModelRolledBack to reach Alertmanager")

    [alert] = firing(setup, "ModelRolledBack")
    assert alert["labels"]["model"] == model
    [routed] = in_alertmanager(setup, "ModelRolledBack")
    assert [receiver["name"] for receiver in routed["receivers"]] == [ONCALL_RECEIVER]
    # By now the controller has ticked many times since the rollback: still one, and no run or trigger.
    assert actions(setup, "v0002").count("rolled_back") == 1
    [rolled_back] = [e for e in registry.rollout_history(model, "v0002") if e.action == "rolled_back"]
    assert rolled_back.details["prediction_psi"] == 0.6
    assert "prediction PSI 0.6000 above 0.25" in rolled_back.reason
    assert [move.action for move in registry.history(model, "production")][-1] == "rollback"
    assert [move.action for move in registry.history(model, "production")].count("rollback") == 1
    assert setup.controller.runs() == []
    assert setup.controller.triggers() == []
    assert setup.controller.metric("berg_controller_rollbacks_total", {"model": model}) == 1
