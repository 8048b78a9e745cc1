"""The local launcher: the pipeline command as a detached child process, one folder per run.

Each run gets ``<runs_dir>/<run id>/`` (mode 0700) with ``output.log`` (the
pipeline's stdout and stderr), ``command.json`` and, once it ends,
``exit-<pid>.json`` (see :mod:`berg_controller.wrapper`), all mode 0600. The
command is told to write why it failed to ``failure.json`` (``BERG_RUN_FAILURE_FILE``,
see :mod:`berg.contracts.run_failure`); a failed run's progress carries that
report's step and error, or else the last lines of ``output.log``. Starting a run:

1. spawn the wrapper in a new session (so SIGTERM or SIGKILL to the controller
   never reaches the pipeline), holding it at its ``go`` gate;
2. ``record_started(pid, command)``: the pid and command go to the database;
3. write ``go``; only now does the pipeline command run.

A controller that dies between 1 and 3 leaves a wrapper that exits without
running anything, and polling that run answers ``not_started``. A controller
that restarts finds running runs by pid (checked against the process's command
line, so a reused pid is not mistaken for the wrapper) and reads how they ended
from the exit file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from berg.contracts.run_failure import MAX_ERROR_LINES, RUN_FAILURE_FILE_ENV, error_head, read_run_failure
from berg_controller.launchers.base import LaunchError, Progress, RecordStarted
from berg_controller.private_files import make_private_dirs, open_private
from berg_controller.store import RunRecord
from berg_controller.wrapper import GO, exit_file

__all__ = ["FAILURE_FILE", "LOG_FILE", "LocalLauncher", "child_environment"]

log = logging.getLogger(__name__)

LOG_FILE = "output.log"
FAILURE_FILE = "failure.json"
_LOG_TAIL_BYTES = 64 * 1024
_STOP_GRACE_S = 5.0
_REAP_WAIT_S = 5.0
_CONTROLLER_PREFIX = "BERG_CONTROLLER_"


def child_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The pipeline's environment: ``base`` without the controller's own settings (its token), plus ``extra``."""
    environment = {key: value for key, value in base.items() if not key.startswith(_CONTROLLER_PREFIX)}
    environment.update(extra)
    return environment


def _reap_in_background(child: subprocess.Popen[bytes]) -> None:
    """Wait for a wrapper we let go of on a daemon thread, so it is reaped when it ends (no zombie, no warning);
    the run itself is followed through the database and its exit file."""
    threading.Thread(target=child.wait, name=f"berg-reap-{child.pid}", daemon=True).start()


def _last_lines(path: Path, count: int) -> str:
    """The last ``count`` non-blank lines of a log (read from its end: logs can be large)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join([line for line in text.splitlines() if line.strip()][-count:])


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the parenthesised command name, which may itself hold spaces and parentheses.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


class LocalLauncher:
    """Runs ``command + args`` (``{python}``, ``{model}``, ``{run_id}`` replaced) under the exit-status wrapper.

    Args:
        runs_dir: where each run's folder goes.
        command: the pipeline command and its arguments, e.g.
            ``["{python}", "-m", "berg_app", "pipeline", "run", "--model-name", "{model}"]``.
        environment: the pipeline's whole environment (see :func:`child_environment`).
        python: the interpreter for the wrapper and ``{python}``.
    """

    kind = "local"

    def __init__(
        self,
        runs_dir: Path,
        command: Sequence[str],
        environment: Mapping[str, str],
        *,
        python: str = sys.executable,
    ) -> None:
        self._runs_dir = runs_dir.absolute()
        self._command = list(command)
        self._environment = dict(environment)
        self._python = python
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def run_dir(self, run_id: str) -> Path:
        return self._runs_dir / run_id

    def command_for(self, run: RunRecord) -> list[str]:
        """The pipeline command of ``run``, placeholders replaced."""
        values = {"python": self._python, "model": run.model, "run_id": run.id}
        return [argument.format(**values) for argument in self._command]

    def start(self, run: RunRecord, record_started: RecordStarted) -> str:
        directory = self.run_dir(run.id)
        command = self.command_for(run)
        try:
            make_private_dirs(directory)
            with open_private(directory / "command.json", "wb") as handle:
                handle.write(json.dumps(command).encode())
            # An attempt that never ran the pipeline may be followed by one that does: no stale report.
            (directory / FAILURE_FILE).unlink(missing_ok=True)
            with open_private(directory / LOG_FILE, "ab") as output:
                wrapper = subprocess.Popen(
                    [self._python, "-m", "berg_controller.wrapper", "--run-dir", str(directory), "--", *command],
                    stdin=subprocess.PIPE,
                    stdout=output,
                    stderr=output,
                    env={**self._environment, RUN_FAILURE_FILE_ENV: str(directory / FAILURE_FILE)},
                    start_new_session=True,
                )
        except OSError as error:
            raise LaunchError(f"cannot start the pipeline wrapper for run {run.id}: {error}") from error
        assert wrapper.stdin is not None
        try:
            record_started(str(wrapper.pid), shlex.join(command))
        except BaseException:
            # No go: the wrapper reads end-of-file and exits without running the pipeline.
            wrapper.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                wrapper.wait(timeout=10)
            raise
        self._children[run.id] = wrapper
        try:
            wrapper.stdin.write(GO)
            wrapper.stdin.close()
        except BrokenPipeError:
            log.warning("the wrapper of run %s exited before its go; see %s", run.id, directory / LOG_FILE)
        log.info("started run %s", run.id, extra={"pid": wrapper.pid, "command": command})
        return str(wrapper.pid)

    def _exit_status(self, run: RunRecord) -> Progress | None:
        if run.external_id is None or not run.external_id.isdigit():
            return Progress("not_started", "no wrapper pid was recorded")
        path = exit_file(self.run_dir(run.id), int(run.external_id))
        try:
            status = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as unreadable:
            return Progress("failed", f"unreadable {path}: {unreadable}")
        if not status.get("started"):
            return Progress("not_started", str(status.get("error") or "the pipeline never started"))
        code = status.get("returncode")
        if code == 0:
            return Progress("succeeded", "the pipeline exited with 0", exit_code=0)
        detail = str(status.get("error") or "") or f"the pipeline exited with {code}"
        step, error = self._why_failed(run, str(status.get("error") or ""))
        return Progress(
            "failed", detail, exit_code=code if isinstance(code, int) else None, failed_step=step, error=error
        )

    def _why_failed(self, run: RunRecord, wrapper_error: str) -> tuple[str | None, str | None]:
        """The failing step and the head of the error: the command's report, else the end of its output."""
        directory = self.run_dir(run.id)
        report = read_run_failure(directory / FAILURE_FILE)
        if report is not None:
            # Cleaned again here: the file is the command's word, the record is ours.
            return report.step, error_head(report.error, self._environment) or None
        text = wrapper_error or _last_lines(directory / LOG_FILE, MAX_ERROR_LINES)
        return None, error_head(text, self._environment) or None

    def _alive(self, run: RunRecord) -> bool:
        child = self._children.get(run.id)
        if child is not None:
            return child.poll() is None
        if run.external_id is None or not run.external_id.isdigit():
            return False
        pid = int(run.external_id)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return False
        except OSError:
            # No /proc: trust the pid (a reused pid is unlikely within a run's lifetime).
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        if not cmdline:
            # Empty for a zombie, and for a moment right after exec: only the state tells them apart.
            return not _is_zombie(pid)
        # Our wrapper names the run's folder on its command line; a process that reused the pid does not.
        return str(self.run_dir(run.id)).encode() in cmdline

    def poll(self, run: RunRecord) -> Progress:
        status = self._exit_status(run)
        if status is None and self._alive(run):
            return Progress("running")
        # Read again: the wrapper may have written its status and exited between the two looks.
        status = status or self._exit_status(run)
        self._reap(run.id)
        if status is not None:
            return status
        return Progress("failed", "the wrapper is gone without an exit status (was it killed?)")

    def _reap(self, run_id: str) -> None:
        child = self._children.pop(run_id, None)
        if child is None:
            return
        try:
            # It wrote its exit status (or is gone): it ends within moments.
            child.wait(timeout=_REAP_WAIT_S)
        except subprocess.TimeoutExpired:
            _reap_in_background(child)

    def stop(self, run: RunRecord) -> None:
        if not self._alive(run) or run.external_id is None:
            return
        group = int(run.external_id)  # the wrapper leads its own session and process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        while self._alive(run) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._alive(run):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self._reap(run.id)

    def close(self) -> None:
        """Forget the children: runs in progress keep going, and a later controller adopts them."""
        for run_id, child in list(self._children.items()):
            if child.poll() is None:
                _reap_in_background(child)
            del self._children[run_id]
