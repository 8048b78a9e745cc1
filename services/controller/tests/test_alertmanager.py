"""The real Alertmanager (the Debian package's binary) delivers to the controller with ``credentials_file``.

This is the payload and the authentication of production, not our idea of them:
an alert posted to Alertmanager's API reaches the webhook as Alertmanager 0.25+
formats it, the controller accepts it (its contract refuses unknown fields) and
starts one run; the resolution that follows starts nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from services.controller.tests.helpers import (
    InProcessController,
    count_starts,
    kill_fake_pipelines,
    register_versions,
    running_alertmanager,
    running_controller,
    settings_for,
)

from tests.helpers import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[InProcessController]:
    token = tmp_path / "webhook-token"
    token.write_text("a-token-from-a-file-0123456789\n")
    settings = settings_for(tmp_path, webhook_token=None, webhook_token_file=token, sleep_s=0.2)
    with running_controller(settings) as running:
        yield running
    kill_fake_pipelines(tmp_path / "starts.txt")


@pytest.fixture
def alertmanager(tmp_path: Path, controller: InProcessController) -> Iterator[str]:
    with running_alertmanager(tmp_path, f"{controller.url}/alerts", tmp_path / "webhook-token") as url:
        yield url


def test_alertmanager_delivers_and_one_run_starts(
    controller: InProcessController, alertmanager: str, tmp_path: Path
) -> None:
    starts_at = datetime.now(UTC) - timedelta(minutes=1)
    labels = {"alertname": "ModelQualityDegraded", "model": "fraud", "severity": "critical"}
    firing = [
        {
            "labels": labels,
            "annotations": {"summary": "PR-AUC fell below the reference"},
            "startsAt": starts_at.isoformat(),
            "generatorURL": "http://prometheus:9090/graph",
        }
    ]
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=firing, timeout=10).status_code == 200
    wait_for(
        lambda: controller.metric("berg_controller_alerts_received_total", {"status": "firing"}) >= 1,
        60,
        "Alertmanager's notification to reach the controller",
    )
    (run,) = controller.wait_finished()
    assert (run["source"], run["model"], run["status"]) == ("alert", "fraud", "succeeded")
    assert run["reason"] == "firing alert ModelQualityDegraded: PR-AUC fell below the reference"

    resolved = [{**firing[0], "endsAt": datetime.now(UTC).isoformat()}]
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=resolved, timeout=10).status_code == 200
    wait_for(
        lambda: controller.metric("berg_controller_alerts_received_total", {"status": "resolved"}) >= 1,
        60,
        "the resolution to reach the controller",
    )
    assert len(controller.runs()) == 1
    assert count_starts(tmp_path / "starts.txt") == 1
    decisions = [(t["decision"], t["reason"]) for t in controller.triggers()]
    assert decisions[0] == ("ignored", "resolved alerts start nothing")


def test_through_alertmanager_only_the_production_versions_alert_starts_a_run(
    controller: InProcessController, alertmanager: str, tmp_path: Path
) -> None:
    """The retired champion (v0001) and the new one (v0002) both have drift alerts firing: one run, for v0002."""
    register_versions(tmp_path / "registry", "fraud", 2, production="v0002")
    starts_at = datetime.now(UTC) - timedelta(minutes=1)
    firing = [
        {
            "labels": {"alertname": "FeatureDriftHigh", "model": "fraud", "version": version, "feature": "amount"},
            "annotations": {"summary": f"Feature amount of fraud {version} has drifted"},
            "startsAt": starts_at.isoformat(),
            "generatorURL": "http://prometheus:9090/graph",
        }
        for version in ("v0001", "v0002")
    ]
    assert httpx.post(f"{alertmanager}/api/v2/alerts", json=firing, timeout=10).status_code == 200
    wait_for(
        lambda: controller.metric("berg_controller_alerts_received_total", {"status": "firing"}) >= 2,
        60,
        "both alerts to reach the controller",
    )
    (run,) = controller.wait_finished()
    assert (run["source"], run["reason"]) == (
        "alert",
        "firing alert FeatureDriftHigh: Feature amount of fraud v0002 has drifted",
    )
    decisions = sorted((t["decision"], t["reason"]) for t in controller.triggers())
    assert [decision for decision, _ in decisions] == ["not_production", "started"]
    assert "fraud v0001, but v0002 is in production" in decisions[0][1]
    assert count_starts(tmp_path / "starts.txt") == 1
