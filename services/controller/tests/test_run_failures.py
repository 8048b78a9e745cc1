"""A failed pipeline run says why: the failing step and the head of its error, in ``GET /runs`` and ``berg runs``.

The controller runs as a process (``python -m berg_controller``) with its local
launcher. Once the pipeline is the fake one, reporting a failed step as ``berg
pipeline run`` does; once it is the real ``berg pipeline run`` on an empty stack
state, whose dataset step fails because the label store holds nothing. ``berg
runs`` finds the controller as a user's shell would: its port from the stack's
settings, its token from ``<state dir>/secrets/controller-token``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from services.controller.tests.helpers import TOKEN, controller_process, fake_pipeline_command
from typer.testing import CliRunner

from berg.contracts.run_failure import MAX_ERROR_BYTES, MAX_ERROR_LINES
from berg_app import cli
from tests.helpers import wait_for
from tests.processes import ServiceProcess

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PIPELINE_RUN = ["{python}", "-m", "berg_app", "pipeline", "run", "--model-name", "{model}"]


@pytest.fixture
def stack_state(tmp_path: Path) -> Path:
    """A local stack's state folder as `berg up` leaves it for clients: the controller's token file."""
    state = tmp_path / "stack"
    (state / "secrets").mkdir(parents=True, mode=0o700)
    (state / "secrets" / "controller-token").write_text(TOKEN)
    return state


@contextmanager
def started_controller(tmp_path: Path, command: list[str], **settings: str) -> Iterator[ServiceProcess]:
    with controller_process(
        tmp_path, sleep_s=0, WEBHOOK_TOKEN=TOKEN, LOCAL__COMMAND=json.dumps(command), **settings
    ) as process:
        process.start()
        process.wait_ready()
        yield process


def failed_run(process: ServiceProcess, timeout_s: float) -> dict[str, Any]:
    """Ask for a manual run and wait for its end (the timeout only bounds a hang); the run must have failed."""
    url = f"http://127.0.0.1:{process.port}"
    with httpx.Client(timeout=30) as client:
        started = client.post(f"{url}/runs", json={"model": "fraud", "reason": "test"}, headers=AUTH)
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]

        def finished() -> bool:
            return client.get(f"{url}/runs/{run_id}").json()["status"] in ("succeeded", "failed")

        wait_for(finished, timeout_s, "the pipeline run to end")
        run: dict[str, Any] = client.get(f"{url}/runs/{run_id}").json()
        assert client.get(f"{url}/runs").json()[0] == run
    assert run["status"] == "failed", run
    return run


def berg_runs(stack_state: Path, process: ServiceProcess, *args: str) -> str:
    environment = {"BERG_STATE_DIR": str(stack_state), "BERG_PORTS__CONTROLLER": str(process.port), "COLUMNS": "250"}
    result = CliRunner().invoke(cli.app, ["runs", *args], env=environment)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_reported_step_failure_is_on_the_run_record(tmp_path: Path, stack_state: Path) -> None:
    error = "\n".join(["XGBoostError: out of memory while building the histogram of amount", *["  at"] * 40])
    command = fake_pipeline_command(tmp_path / "starts.txt", exit_code=1, fail_step="train", error=error)
    with started_controller(tmp_path, command) as process:
        run = failed_run(process, 120)
        listing = berg_runs(stack_state, process)
        shown = berg_runs(stack_state, process, "show", run["id"])
    assert run["failed_step"] == "train"
    assert run["error"].splitlines()[0] == "XGBoostError: out of memory while building the histogram of amount"
    assert len(run["error"].splitlines()) == MAX_ERROR_LINES
    assert len(run["error"].encode()) <= MAX_ERROR_BYTES
    assert run["id"] in listing
    assert "failed" in listing
    assert "XGBoostError: out of memory" in listing
    assert "failed_step: train" in shown
    assert "XGBoostError: out of memory while building the histogram of amount" in shown


@pytest.mark.timeout(900)
def test_a_real_pipeline_run_that_fails_says_which_step_and_why(tmp_path: Path, stack_state: Path) -> None:
    empty = tmp_path / "empty-stack"  # no label store, no features: the dataset step has nothing to read
    empty.mkdir()
    with started_controller(tmp_path, PIPELINE_RUN, LOCAL__STATE_DIR=str(empty)) as process:
        run = failed_run(process, 600)
        listing = berg_runs(stack_state, process, "--model", "fraud")
        shown = berg_runs(stack_state, process, "show", run["id"])
    assert run["failed_step"] == "build-dataset", run
    expected = "berg_pipelines.runtime.dataset.DatasetError: the label store holds no scored events yet"
    assert run["error"].startswith(expected), run
    assert run["exit_code"] == 1
    assert run["id"] in listing
    assert "build-dataset" in listing
    assert "DatasetError: the label store holds no" in listing
    assert "failed_step: build-dataset" in shown
    assert "the label store holds no scored events yet" in shown
