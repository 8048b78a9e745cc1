"""The controller as a process (``python -m berg_controller``), killed with SIGKILL mid-webhook and restarted.

A test-only setting makes the process kill itself once a webhook's run is
stored (``after_store``) or started (``after_launch``), before it replies.
Alertmanager sees no reply and delivers again to the restarted controller: the
run must exist exactly once, its pipeline must run exactly once, and a pipeline
already running must survive the restart and be followed to its end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from services.controller.tests.helpers import (
    TOKEN,
    alert,
    controller_process,
    count_starts,
    deliver,
    webhook,
)

from tests.helpers import wait_for
from tests.processes import ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ServiceProcess]:
    # The fake pipeline runs until the test creates the release file: it outlives a restart of the controller
    # however long the restart takes on a loaded machine.
    with controller_process(tmp_path, sleep_s=0, hold=tmp_path / "release", WEBHOOK_TOKEN=TOKEN) as process:
        yield process


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("point", ["after_store", "after_launch"])
def test_killed_before_replying_then_redelivered(controller: ServiceProcess, tmp_path: Path, point: str) -> None:
    starts = tmp_path / "starts.txt"
    url = f"http://127.0.0.1:{controller.port}"
    payload = webhook(alert())
    controller.start(FAULT_KILL_POINT=point)
    controller.wait_ready()
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{url}/alerts", json=payload, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert controller.process is not None
    assert controller.process.wait(timeout=30) == -9, controller.log_tail()

    pipeline_pid = None
    if point == "after_launch":
        wait_for(lambda: count_starts(starts) == 1, 300, "the pipeline started before the crash")  # bounds a hang
        pipeline_pid = int(starts.read_text().split()[2])
    else:
        assert count_starts(starts) == 0  # stored, never started

    controller.start(FAULT_KILL_POINT="none")
    controller.wait_ready()
    with httpx.Client(timeout=30) as client:
        delivery = deliver(client, url, payload)
        assert delivery.response.status_code == 200
        assert delivery.response.json()["duplicates"] == 1
        assert delivery.response.json()["runs_started"] == []
        (run,) = client.get(f"{url}/runs").json()
        assert run["status"] == "running", controller.log_tail()
        if pipeline_pid is not None:
            assert alive(pipeline_pid), "the pipeline did not survive the controller's death"
        (tmp_path / "release").touch()
        wait_for(lambda: client.get(f"{url}/runs").json()[0]["status"] == "succeeded", 300, "the run to finish")
        (finished,) = client.get(f"{url}/runs").json()
        assert finished["id"] == run["id"]
        assert finished["exit_code"] == 0
    assert count_starts(starts) == 1
    assert controller.stop(timeout_s=30) == 0, controller.log_tail()


def test_sigterm_leaves_the_pipeline_running_for_the_next_controller(
    controller: ServiceProcess, tmp_path: Path
) -> None:
    starts = tmp_path / "starts.txt"
    url = f"http://127.0.0.1:{controller.port}"
    controller.start()
    controller.wait_ready()
    with httpx.Client(timeout=30) as client:
        response = client.post(f"{url}/runs", json={"model": "fraud"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 202
        wait_for(lambda: count_starts(starts) == 1, 300, "the pipeline to start")  # bounds a hang
        assert controller.stop(timeout_s=30) == 0, controller.log_tail()
        pipeline_pid = int(starts.read_text().split()[2])
        assert alive(pipeline_pid)
        controller.start()
        controller.wait_ready()
        assert client.get(f"{url}/runs").json()[0]["status"] == "running"
        (tmp_path / "release").touch()
        wait_for(lambda: client.get(f"{url}/runs").json()[0]["status"] == "succeeded", 300, "the run to finish")
    assert count_starts(starts) == 1
    assert os.path.exists(tmp_path / "controller" / "controller.db")
