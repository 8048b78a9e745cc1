"""Prometheus scrapes a real Berg metrics endpoint; Alertmanager runs the generated config, which amtool accepts."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from berg.web.app import WebSettings, create_app
from berg.web.server import BackgroundServer
from berg_app.stack.local import LocalStack
from berg_app.stack.monitoring_config import BERG_SCRAPE_JOB, register_scrape_target, unregister_scrape_target

pytestmark = pytest.mark.integration


def poll_query(stack: LocalStack, query: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    """Poll the Prometheus HTTP API until ``query`` returns a non-empty vector."""
    url = f"http://{stack.settings.host}:{stack.settings.ports.prometheus}/api/v1/query"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = httpx.get(url, params={"query": query}, timeout=5).json()
        assert body["status"] == "success", body
        if body["data"]["result"]:
            return list(body["data"]["result"])
        time.sleep(0.25)
    raise AssertionError(f"Prometheus returned nothing for {query} within {timeout_s}s")


@pytest.fixture
def berg_service(stack: LocalStack) -> Iterator[tuple[str, Counter]]:
    """A real Berg app on uvicorn, registered with the stack's Prometheus."""
    registry = CollectorRegistry()
    events = Counter("berg_test_events", "Events handled by the test service.", registry=registry)
    settings = WebSettings(port=0)
    server = BackgroundServer(create_app(settings, title="scrape-test", registry=registry), settings)
    server.start()
    name = f"scrape-test-{uuid.uuid4().hex[:6]}"
    register_scrape_target(stack.layout, name, f"127.0.0.1:{server.port}", {"model": "fraud"})
    try:
        yield name, events
    finally:
        unregister_scrape_target(stack.layout, name)
        server.stop()


def test_prometheus_scrapes_a_berg_metrics_endpoint(stack: LocalStack, berg_service: tuple[str, Counter]) -> None:
    name, events = berg_service
    events.inc(41)
    [up] = poll_query(stack, f'up{{job="{BERG_SCRAPE_JOB}",service="{name}"}} == 1')
    assert up["metric"]["model"] == "fraud"
    events.inc()
    [sample] = poll_query(stack, f'berg_test_events_total{{service="{name}"}} == 42')
    assert float(sample["value"][1]) == 42


def test_prometheus_sends_alerts_to_the_stacks_alertmanager(stack: LocalStack) -> None:
    [discovered] = poll_query(stack, 'up{job="alertmanager"} == 1')
    assert discovered["metric"]["instance"] == f"{stack.settings.host}:{stack.settings.ports.alertmanager}"
    url = f"http://{stack.settings.host}:{stack.settings.ports.prometheus}/api/v1/alertmanagers"
    active = httpx.get(url, timeout=5).json()["data"]["activeAlertmanagers"]
    assert [a["url"] for a in active] == [
        f"http://{stack.settings.host}:{stack.settings.ports.alertmanager}/api/v2/alerts"
    ]


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("amtool")
    assert binary is not None, "amtool is missing: apt-get install prometheus-alertmanager"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30, check=False)


def test_amtool_accepts_the_generated_alertmanager_config(stack: LocalStack) -> None:
    result = amtool("check-config", str(stack.layout.alertmanager_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    broken.write_text("route:\n  receiver: nowhere\nreceivers: []\n")
    assert amtool("check-config", str(broken)).returncode != 0


def test_alertmanager_runs_the_generated_config(stack: LocalStack) -> None:
    base = f"http://{stack.settings.host}:{stack.settings.ports.alertmanager}"
    status = httpx.get(f"{base}/api/v2/status", timeout=5).json()
    assert "alertname" in status["config"]["original"]
    assert status["cluster"]["status"] == "disabled"
    alert = {"labels": {"alertname": "BergIntegrationTest", "model": "fraud"}, "annotations": {"summary": "test"}}
    assert httpx.post(f"{base}/api/v2/alerts", json=[alert], timeout=5).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alerts = httpx.get(
            f"{base}/api/v2/alerts", params={"filter": 'alertname="BergIntegrationTest"'}, timeout=5
        ).json()
        if alerts:
            assert alerts[0]["labels"]["model"] == "fraud"
            return
        time.sleep(0.2)
    raise AssertionError("Alertmanager did not hold the posted alert")
