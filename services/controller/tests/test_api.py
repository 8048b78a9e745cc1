"""The controller's HTTP API on uvicorn (in this process) with its real SQLite store and the local launcher.

Authentication, bad payloads, a database that is briefly unavailable, manual
runs, the history endpoints and the metrics catalogue.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from services.controller.tests.helpers import (
    TOKEN,
    InProcessController,
    alert,
    count_starts,
    kill_fake_pipelines,
    running_controller,
    settings_for,
    webhook,
)

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[InProcessController]:
    with running_controller(settings_for(tmp_path, sleep_s=0.5, register=True, database_timeout_s=0.3)) as running:
        yield running
    kill_fake_pipelines(tmp_path / "starts.txt")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer t\u00f6ken".encode("latin-1")},
    ],
)
def test_the_webhook_needs_the_token(controller: InProcessController, headers: dict[str, str | bytes]) -> None:
    response = controller.client.post(f"{controller.url}/alerts", json=webhook(alert()), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"
    manual = controller.client.post(f"{controller.url}/runs", json={"model": "fraud"}, headers=headers)
    assert manual.status_code == 401
    assert controller.runs() == []
    assert controller.triggers() == []


def test_bad_payloads_are_4xx_and_store_nothing(controller: InProcessController) -> None:
    post = controller.client.post
    assert post(f"{controller.url}/alerts", content=b"{not json", headers=AUTH).status_code == 422
    assert post(f"{controller.url}/alerts", json={**webhook(alert()), "version": "3"}, headers=AUTH).status_code == 422
    assert post(f"{controller.url}/alerts", json=[1, 2], headers=AUTH).status_code == 422
    huge = webhook(alert(description="x" * 2_000_000))
    assert post(f"{controller.url}/alerts", json=huge, headers=AUTH).status_code == 413
    assert controller.triggers() == []


def test_an_accepted_webhook_says_what_it_decided(controller: InProcessController) -> None:
    payload = webhook(
        alert(),
        alert(alertname="KafkaConsumerLagHigh"),
        alert(model=None),
        alert(status="resolved"),
    )
    response = controller.client.post(f"{controller.url}/alerts", json=payload, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert (body["alerts"], body["duplicates"]) == (4, 0)
    assert [d["decision"] for d in body["decisions"]] == ["started", "ignored", "ignored", "ignored"]
    assert body["runs_started"] == [body["decisions"][0]["run_id"]]
    again = controller.client.post(f"{controller.url}/alerts", json=payload, headers=AUTH).json()
    assert (again["duplicates"], again["decisions"], again["runs_started"]) == (4, [], [])
    assert len(controller.triggers()) == 4


def test_a_locked_database_answers_503_then_recovers(controller: InProcessController, tmp_path: Path) -> None:
    database = tmp_path / "controller" / "controller.db"
    locker = sqlite3.connect(database, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        response = controller.client.post(f"{controller.url}/alerts", json=webhook(alert()), headers=AUTH)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["detail"] == "the controller's database is unavailable; try again later"
        manual = controller.client.post(f"{controller.url}/runs", json={"model": "fraud"}, headers=AUTH)
        assert manual.status_code == 503
        assert controller.runs() == []  # reads go on (WAL)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    response = controller.client.post(f"{controller.url}/alerts", json=webhook(alert()), headers=AUTH)
    assert response.status_code == 200
    assert len(response.json()["runs_started"]) == 1


def test_manual_runs(controller: InProcessController, tmp_path: Path) -> None:
    post = controller.client.post
    response = post(f"{controller.url}/runs", json={"model": "fraud", "reason": "new features"}, headers=AUTH)
    assert response.status_code == 202
    run = response.json()
    assert (run["model"], run["source"], run["reason"], run["status"]) == (
        "fraud",
        "manual",
        "manual: new features",
        "running",
    )
    assert run["external_id"].isdigit()
    assert "fake_pipeline.py" in run["command"]
    conflict = post(f"{controller.url}/runs", json={"model": "fraud"}, headers=AUTH)
    assert conflict.status_code == 409
    assert conflict.json()["detail"]["active_run"] == run["id"]
    assert post(f"{controller.url}/runs", json={"model": "spam"}, headers=AUTH).status_code == 404
    assert post(f"{controller.url}/runs", json={"model": "fraud", "extra": 1}, headers=AUTH).status_code == 422
    (finished,) = controller.wait_finished()
    assert finished["status"] == "succeeded"
    assert finished["exit_code"] == 0
    # The fake pipeline registered and promoted v0001, as the real one does.
    assert (finished["result_version"], finished["promoted"]) == ("v0001", True)
    # A manual run is not held back by the cooldown.
    assert post(f"{controller.url}/runs", json={"model": "fraud"}, headers=AUTH).status_code == 202
    controller.wait_finished()
    assert count_starts(tmp_path / "starts.txt") == 2


def test_history_endpoints(controller: InProcessController) -> None:
    for index in range(3):
        controller.client.post(f"{controller.url}/alerts", json=webhook(alert(f"m{index}")), headers=AUTH)
    get = controller.client.get
    triggers = get(f"{controller.url}/triggers", params={"limit": 2}).json()
    assert [t["model"] for t in triggers] == ["m2", "m1"]
    assert [t["model"] for t in get(f"{controller.url}/triggers", params={"model": "m0"}).json()] == ["m0"]
    assert get(f"{controller.url}/triggers", params={"limit": 0}).status_code == 422
    assert get(f"{controller.url}/runs", params={"limit": 1001}).status_code == 422
    assert get(f"{controller.url}/runs/nope").status_code == 404
    run_id = controller.client.post(f"{controller.url}/runs", json={"model": "fraud"}, headers=AUTH).json()["id"]
    assert get(f"{controller.url}/runs/{run_id}").json()["id"] == run_id
    assert [r["id"] for r in get(f"{controller.url}/runs", params={"model": "fraud"}).json()] == [run_id]
    controller.wait_finished()


def test_metrics_as_documented(controller: InProcessController) -> None:
    controller.client.post(f"{controller.url}/alerts", json=webhook(alert(), alert(status="resolved")), headers=AUTH)
    controller.client.post(f"{controller.url}/alerts", json=webhook(alert()), headers=AUTH)
    assert controller.metric("berg_controller_active_runs", {"model": "fraud"}) == 1
    controller.wait_finished()
    labels = {"model": "fraud", "source": "alert"}
    assert controller.metric("berg_controller_alerts_received_total", {"status": "firing"}) == 2
    assert controller.metric("berg_controller_alerts_received_total", {"status": "resolved"}) == 1
    assert controller.metric("berg_controller_triggers_total", {**labels, "decision": "started"}) == 1
    assert controller.metric("berg_controller_triggers_total", {**labels, "decision": "active_run"}) == 1
    assert controller.metric("berg_controller_triggers_total", {**labels, "decision": "ignored"}) == 1

    def settled() -> bool:
        return controller.metric("berg_controller_active_runs", {"model": "fraud"}) == 0 and (
            controller.metric("berg_controller_last_promotion_timestamp_seconds", {"model": "fraud"}) > 0
        )

    from tests.helpers import wait_for

    wait_for(settled, 120, "the loop to refresh the gauges")  # bounds a hang: a round every 0.2 s
    assert controller.metric("berg_controller_runs_total", {"model": "fraud", "status": "succeeded"}) == 1
    names = {
        line.split("{")[0].split(" ")[0]
        for line in controller.client.get(f"{controller.url}/metrics").text.splitlines()
        if line.startswith("berg_controller_")
    }
    assert names - {n for n in names if n.endswith("_created")} == {
        "berg_controller_alerts_received_total",
        "berg_controller_triggers_total",
        "berg_controller_runs_total",
        "berg_controller_active_runs",
        "berg_controller_last_promotion_timestamp_seconds",
        "berg_controller_pending_approvals",
        "berg_controller_rollbacks_total",
    }


def test_health_and_readiness(controller: InProcessController) -> None:
    assert controller.client.get(f"{controller.url}/healthz").json() == {"status": "ok"}
    ready = controller.client.get(f"{controller.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["background_loop"] is True
    assert "/alerts" in httpx.get(f"{controller.url}/openapi.json").json()["paths"]
