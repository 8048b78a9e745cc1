"""The stack's process supervisor: supervisord, configured by Berg, driven over its XML-RPC socket.

supervisord (a maintained, widely used supervisor) gives each program a log
file, restarts crashes, stops whole process groups and survives the terminal
that started it; Berg only renders its config and talks to it.
"""

from __future__ import annotations

import configparser
import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from supervisor.xmlrpc import SupervisorTransport

from berg_app.stack.layout import StateLayout

__all__ = ["ProcessInfo", "Program", "Supervisor", "SupervisorError", "render_config"]


class SupervisorError(Exception):
    """supervisord could not be started, reached or stopped; the message says what to do."""


@dataclass(frozen=True)
class Program:
    """One supervised process."""

    name: str
    command: Sequence[str]
    environment: Mapping[str, str] = field(default_factory=dict)
    priority: int = 100
    """Lower starts first and stops last."""
    stop_wait_s: int = 30
    """Grace period after SIGTERM before SIGKILL."""
    start_s: int = 2
    """Seconds a process must stay up to count as started."""
    autostart: bool = True
    """False: supervisord only registers it; :meth:`Supervisor.start_program` starts it."""


@dataclass(frozen=True)
class ProcessInfo:
    """What supervisord knows of one program."""

    name: str
    state: str
    pid: int
    description: str

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"


def _escape(value: str) -> str:
    # supervisord expands %(name)s in values; a literal % must be doubled.
    return value.replace("%", "%%")


def _quote(argument: str) -> str:
    # supervisord splits `command` with shlex; quote what needs it.
    if argument and all(c.isalnum() or c in "-_./:=,*@+" for c in argument):
        return argument
    return "'" + argument.replace("'", "'\"'\"'") + "'"


def render_config(layout: StateLayout, programs: Sequence[Program]) -> str:
    """The supervisord.conf text for ``programs`` under ``layout``."""
    parser = configparser.ConfigParser(interpolation=None)
    parser["unix_http_server"] = {"file": str(layout.supervisor_socket), "chmod": "0700"}
    parser["supervisord"] = {
        "logfile": str(layout.log_file("supervisord")),
        "pidfile": str(layout.supervisor_pidfile),
        "directory": str(layout.root),
        "childlogdir": str(layout.logs),
        "nodaemon": "false",
        "silent": "true",
        "minfds": "4096",
    }
    parser["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"
    }
    parser["supervisorctl"] = {"serverurl": f"unix://{layout.supervisor_socket}"}
    for program in programs:
        section: dict[str, str] = {
            "command": _escape(" ".join(_quote(part) for part in program.command)),
            "directory": str(layout.root),
            "priority": str(program.priority),
            "autostart": "true" if program.autostart else "false",
            "autorestart": "unexpected",
            "startsecs": str(program.start_s),
            "startretries": "3",
            "stopsignal": "TERM",
            "stopwaitsecs": str(program.stop_wait_s),
            "stopasgroup": "true",
            "killasgroup": "true",
            "redirect_stderr": "true",
            "stdout_logfile": str(layout.log_file(program.name)),
            "stdout_logfile_maxbytes": "20MB",
            "stdout_logfile_backups": "2",
        }
        if program.environment:
            pairs = ",".join(f'{key}="{_escape(value)}"' for key, value in program.environment.items())
            section["environment"] = pairs
        parser[f"program:{program.name}"] = section
    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


class Supervisor:
    """The supervisord of one state directory."""

    def __init__(self, layout: StateLayout) -> None:
        self._layout = layout

    def _call(self, method: str, *args: Any) -> Any:
        # One connection per call, closed after it: supervisord serves callers one at a time anyway.
        transport = SupervisorTransport(None, None, f"unix://{self._layout.supervisor_socket}")
        with xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport) as proxy:
            return getattr(proxy.supervisor, method)(*args)

    def is_running(self) -> bool:
        """Whether supervisord answers on its socket."""
        if not self._layout.supervisor_socket.exists():
            return False
        try:
            state = self._call("getState")
        except (OSError, xmlrpc.client.Error):
            return False
        return cast(dict[str, Any], state).get("statename") == "RUNNING"

    def pid(self) -> int | None:
        """supervisord's pid from its pidfile, if that process still exists."""
        try:
            pid = int(self._layout.supervisor_pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self, programs: Sequence[Program], timeout_s: float = 30.0) -> None:
        """Write the config and start supervisord, which starts every program.

        Raises:
            SupervisorError: it did not answer on its socket within ``timeout_s``.
        """
        self._layout.supervisor_config.write_text(render_config(self._layout, programs))
        command = [
            sys.executable,
            "-m",
            "supervisor.supervisord",
            "--configuration",
            str(self._layout.supervisor_config),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout_s)
        if result.returncode != 0:
            raise SupervisorError(f"supervisord failed to start: {(result.stdout + result.stderr).strip()}")
        deadline = time.monotonic() + timeout_s
        while not self.is_running():
            if time.monotonic() > deadline:
                raise SupervisorError(
                    f"supervisord did not answer on {self._layout.supervisor_socket}; "
                    f"see {self._layout.log_file('supervisord')}"
                )
            time.sleep(0.1)

    def start_program(self, name: str) -> None:
        """Start a program registered with ``autostart=False`` (no-op when it runs already)."""
        try:
            self._call("startProcess", name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise SupervisorError(f"could not start {name}: {fault.faultString}") from fault

    def processes(self) -> list[ProcessInfo]:
        """Every program's state."""
        infos = self._call("getAllProcessInfo")
        return [
            ProcessInfo(
                name=info["name"], state=info["statename"], pid=int(info["pid"]), description=info["description"]
            )
            for info in cast(list[dict[str, Any]], infos)
        ]

    def shutdown(self, timeout_s: float = 90.0) -> list[int]:
        """Stop every program (in reverse priority), then supervisord itself; wait until all are gone.

        Returns:
            pids that were still alive at the deadline and had to be killed (empty when clean).
        """
        pids: list[int] = []
        supervisord_pid = self.pid()
        if self.is_running():
            pids = [info.pid for info in self.processes() if info.pid > 0]
            try:
                self._call("stopAllProcesses", True)
                self._call("shutdown")
            except (OSError, xmlrpc.client.Error):
                # Shutting down closes the socket under the call; the wait below decides.
                pass
        if supervisord_pid is not None:
            pids.append(supervisord_pid)
        deadline = time.monotonic() + timeout_s
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        leftovers = [pid for pid in pids if _alive(pid)]
        for pid in leftovers:
            _kill_group(pid)
        self._layout.supervisor_pidfile.unlink(missing_ok=True)
        return leftovers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes; only /proc can tell.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _kill_group(pid: int) -> None:
    # Supervised programs lead their own process group; supervisord may not.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
