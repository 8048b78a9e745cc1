"""The real Alertmanager (the Debian package's binary) delivers to the controller with ``credentials_file``.

This is the payload and the authentication of production, not our idea of them:
an alert posted to Alertmanager's API reaches the webhook as Alertmanager 0.25+
formats it, the controller accepts it (its contract refuses unknown fields) and
starts one run; the resolution that follows starts nothing.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from services.controller.tests.helpers import (
    InProcessController,
    count_starts,
    kill_fake_pipelines,
    running_controller,
    settings_for,
)

from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.integration

ALERTMANAGER = "prometheus-alertmanager"


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
    binary = shutil.which(ALERTMANAGER)
    if binary is None:
        pytest.fail(f"{ALERTMANAGER} is not installed: run scripts/bootstrap.sh")
    config = {
        "route": {
            "receiver": "berg-controller",
            "group_by": ["alertname", "model"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "berg-controller",
                "webhook_configs": [
                    {
                        "url": f"{controller.url}/alerts",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials_file": str(tmp_path / "webhook-token")}
                        },
                    }
                ],
            }
        ],
    }
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    with (tmp_path / "alertmanager.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.path={tmp_path / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 30, "Alertmanager to be ready")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


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
