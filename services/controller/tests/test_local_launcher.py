"""The local launcher: a detached pipeline behind a go gate, its exit status in a file, adoption after a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from services.controller.tests.helpers import count_starts, fake_pipeline_command, kill_fake_pipelines

from berg_controller.launchers import Progress
from berg_controller.launchers.local import LOG_FILE, LocalLauncher, child_environment
from berg_controller.store import RunRecord
from berg_controller.wrapper import exit_file
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def starts(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "starts.txt"
    yield path
    kill_fake_pipelines(path)


def pending(run_id: str = "20260101-000000-00000001", model: str = "fraud") -> RunRecord:
    return RunRecord(
        id=run_id, model=model, launcher="local", source="manual", reason="test", status="pending", created_at=T0
    )


def launcher_for(tmp_path: Path, starts: Path, env: dict[str, str] | None = None, **command: Any) -> LocalLauncher:
    return LocalLauncher(
        tmp_path / "runs",
        fake_pipeline_command(starts, **command),
        child_environment(os.environ, env or {}),
    )


class Recorder:
    """Plays the database: remembers what the launcher recorded, and what had run by then."""

    def __init__(self, starts: Path) -> None:
        self.starts = starts
        self.calls: list[tuple[str, str]] = []
        self.starts_when_recorded: int | None = None

    def __call__(self, external_id: str, command: str) -> None:
        self.starts_when_recorded = count_starts(self.starts)
        self.calls.append((external_id, command))


def start(launcher: LocalLauncher, run: RunRecord, recorder: Recorder) -> RunRecord:
    pid = launcher.start(run, recorder)
    return replace(run, status="running", external_id=pid, command=recorder.calls[-1][1], started_at=T0)


def wait_done(launcher: LocalLauncher, run: RunRecord, timeout_s: float = 300) -> Progress:
    """The run's end; ``timeout_s`` only bounds a hang (two Python processes start on a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    while (progress := launcher.poll(run)).state == "running":
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.05)
    return progress


def test_the_pid_is_recorded_before_the_pipeline_runs(tmp_path: Path, starts: Path) -> None:
    launcher = launcher_for(tmp_path, starts, sleep_s=0.5)
    recorder = Recorder(starts)
    run = start(launcher, pending(), recorder)
    ((pid, command),) = recorder.calls
    assert recorder.starts_when_recorded == 0
    assert pid == run.external_id
    assert pid.isdigit()
    assert "fake_pipeline.py" in command
    assert "--model fraud" in command
    assert f"--run-id {run.id}" in command
    assert launcher.poll(run).state == "running"
    assert wait_done(launcher, run) == Progress("succeeded", "the pipeline exited with 0", exit_code=0)
    assert count_starts(starts) == 1
    run_dir = launcher.run_dir(run.id)
    assert "sleeping 0.5s" in (run_dir / LOG_FILE).read_text()
    assert exit_file(run_dir, int(pid)).exists()


def test_a_failing_pipeline_fails_with_its_exit_code(tmp_path: Path, starts: Path) -> None:
    launcher = launcher_for(tmp_path, starts, exit_code=3)
    run = start(launcher, pending(), Recorder(starts))
    progress = wait_done(launcher, run)
    assert (progress.state, progress.detail, progress.exit_code) == ("failed", "the pipeline exited with 3", 3)


def test_a_failed_step_and_its_error_come_from_the_commands_report(tmp_path: Path, starts: Path) -> None:
    error = "XGBoostError: out of memory\nwhile building the histogram of amount"
    launcher = launcher_for(tmp_path, starts, exit_code=1, fail_step="train", error=error)
    run = start(launcher, pending(), Recorder(starts))
    assert wait_done(launcher, run) == Progress(
        "failed", "the pipeline exited with 1", exit_code=1, failed_step="train", error=error
    )
    assert oct(os.stat(launcher.run_dir(run.id) / "failure.json").st_mode & 0o777) == "0o600"


def test_without_a_report_the_error_is_the_end_of_its_output_secrets_masked(tmp_path: Path, starts: Path) -> None:
    secret = "hunter2-do-not-show"
    lines = [f"step output {n}" for n in range(40)] + [f"connecting with {secret}", "RuntimeError: gave up"]
    launcher = launcher_for(tmp_path, starts, env={"PIPELINE_DB_PASSWORD": secret}, exit_code=2, output=lines)
    run = start(launcher, pending(), Recorder(starts))
    progress = wait_done(launcher, run)
    assert (progress.state, progress.exit_code, progress.failed_step) == ("failed", 2, None)
    assert progress.error is not None
    assert progress.error.splitlines() == [*lines[-20:-2], "connecting with ***", "RuntimeError: gave up"]
    assert secret in (launcher.run_dir(run.id) / LOG_FILE).read_text()  # the log has it; the record does not


def test_a_missing_command_fails(tmp_path: Path) -> None:
    launcher = LocalLauncher(tmp_path / "runs", ["/nonexistent/pipeline"], dict(os.environ))
    run = start(launcher, pending(), Recorder(tmp_path / "starts.txt"))
    progress = wait_done(launcher, run)
    assert progress.state == "failed"
    assert progress.exit_code == 127
    assert "cannot start '/nonexistent/pipeline'" in progress.detail
    assert progress.error is not None
    assert "cannot start '/nonexistent/pipeline'" in progress.error


def test_when_recording_fails_the_pipeline_never_runs(tmp_path: Path, starts: Path) -> None:
    launcher = launcher_for(tmp_path, starts)
    seen: list[str] = []

    def database_down(external_id: str, command: str) -> None:
        seen.append(external_id)
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError, match="database is locked"):
        launcher.start(pending(), database_down)
    run = replace(pending(), status="running", external_id=seen[0])
    # The launcher waits a while for the wrapper to read its end of file; a loaded machine may need longer.
    assert wait_done(launcher, run) == Progress("not_started", "the controller never said go")
    assert count_starts(starts) == 0  # the wrapper ended without a go: nothing is left that could start it
    # Started again (a new attempt, a new wrapper): it runs, once.
    again = start(launcher, pending(), Recorder(starts))
    assert again.external_id != seen[0]
    assert wait_done(launcher, again).state == "succeeded"
    assert count_starts(starts) == 1


def test_a_wrapper_that_never_hears_go_exits_without_running(tmp_path: Path, starts: Path) -> None:
    """What a controller killed between spawning the wrapper and its go leaves behind."""
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    command = [part.format(python=sys.executable, model="fraud", run_id="r") for part in fake_pipeline_command(starts)]
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "berg_controller.wrapper", "--run-dir", str(run_dir), "--", *command],
        stdin=subprocess.PIPE,
    )
    assert wrapper.stdin is not None
    wrapper.stdin.close()  # the controller died: end of file, no go
    assert wrapper.wait(timeout=30) == 0
    assert '"started": false' in exit_file(run_dir, wrapper.pid).read_text()
    assert count_starts(starts) == 0


def test_a_restarted_controller_adopts_the_run(tmp_path: Path, starts: Path) -> None:
    first = launcher_for(tmp_path, starts, sleep_s=1.5)
    run = start(first, pending(), Recorder(starts))
    # A new launcher (a new controller process) knows the run only from the database.
    second = launcher_for(tmp_path, starts, sleep_s=1.5)
    assert second.poll(run).state == "running"
    assert wait_done(second, run).state == "succeeded"
    assert count_starts(starts) == 1
    first.close()


def test_a_reused_pid_is_not_the_wrapper(tmp_path: Path, starts: Path) -> None:
    launcher = launcher_for(tmp_path, starts)
    # This test process is alive, but it is not the run's wrapper.
    run = replace(pending(), status="running", external_id=str(os.getpid()))
    progress = launcher.poll(run)
    assert progress.state == "failed"
    assert "without an exit status" in progress.detail


def test_stop_ends_the_pipeline(tmp_path: Path, starts: Path) -> None:
    launcher = launcher_for(tmp_path, starts, sleep_s=60)
    run = start(launcher, pending(), Recorder(starts))
    wait_for(lambda: count_starts(starts) == 1, 300, "the pipeline to start")  # bounds a hang
    pipeline_pid = int(starts.read_text().split()[2])
    launcher.stop(run)
    progress = launcher.poll(run)
    assert progress.state == "failed"
    wait_for(lambda: not Path(f"/proc/{pipeline_pid}").exists() or _zombie(pipeline_pid), 120, "the pipeline to end")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_the_pipeline_does_not_see_the_controller_settings() -> None:
    environment = child_environment(
        {"PATH": "/bin", "BERG_CONTROLLER_WEBHOOK_TOKEN": "secret", "BERG_STATE_DIR": "/old"},
        {"BERG_STATE_DIR": "/state", "BERG_REGISTRY_URI": "/registry"},
    )
    assert environment == {"PATH": "/bin", "BERG_STATE_DIR": "/state", "BERG_REGISTRY_URI": "/registry"}
