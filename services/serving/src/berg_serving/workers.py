"""Scale-out on one host: ``BERG_SERVING_WORKERS`` processes serving the same ports, and their supervisor.

HTTP: the supervisor binds the socket once, with uvicorn's own :meth:`uvicorn.Config.bind_socket` (what
``uvicorn --workers`` does), and hands it to each worker, which serves it with ``uvicorn.Server.serve(sockets=...)``.
One socket is one accept queue: a connection no worker has accepted yet outlives the death of any worker, and a
replacement serves the same socket. gRPC needs no hand-over: grpc sets ``SO_REUSEPORT`` on its listeners
(``grpc.so_reuseport``, on by default), so every worker binds the gRPC port and the kernel spreads connections.

Workers are spawned, not forked: each is a fresh interpreter that reads the settings and assembles everything
itself (the champion and its watcher thread, Feast, the prediction log's producer); nothing that owns threads or
sockets (grpc, Feast) is ever forked.

The supervisor

- creates a private ``PROMETHEUS_MULTIPROC_DIR`` before the first worker starts (so the workers' prometheus_client
  runs in multiprocess mode, and Feast, which sets the variable when it is unset, leaves it alone), marks each dead
  worker's live gauges dead, and removes the folder at exit;
- forwards SIGTERM and SIGINT as SIGTERM to every worker, each of which stops as a single process does (readiness
  503 for ``drain_delay_s``, listeners closed, requests in flight finished, stores closed), and kills what is still
  running ``grace_period_s`` (and a margin) later;
- stops everything and exits non-zero when a worker dies before it first listens (a settings, registry or Feast
  problem: every start would fail the same way), with the worker's message when it gave one;
- replaces a worker that dies after it listened, unless :class:`RestartBudget` says workers die too often.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any

from berg.web.app import WebSettings
from berg_serving.settings import ServingSettings

__all__ = ["RestartBudget", "supervise"]

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_LISTENING = "listening"
_KILL_MARGIN_S = 5.0
"""After the grace period, how long a worker still has before it is killed."""
_MULTIPROC_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
"""prometheus_client's name for the folder, and the older one Feast also sets when unset."""


@dataclass
class RestartBudget:
    """How many worker deaths to repair: at most ``limit`` within any ``window_s`` seconds.

    >>> budget = RestartBudget(limit=2, window_s=60)
    >>> [budget.allow(now) for now in (0.0, 1.0, 2.0, 70.0)]
    [True, True, False, True]
    """

    limit: int = 5
    window_s: float = 60.0
    _deaths: deque[float] = field(default_factory=deque)

    def allow(self, now: float) -> bool:
        """Count a death at ``now`` (monotonic seconds); whether the dead worker may be replaced."""
        while self._deaths and now - self._deaths[0] >= self.window_s:
            self._deaths.popleft()
        self._deaths.append(now)
        return len(self._deaths) <= self.limit


def start_failure(pid: int | None, exit_code: int | None, message: str | None) -> str:
    """The one line saying why a worker never listened (``message``: what it gave as its ``SystemExit``)."""
    if message:
        return message
    return f"a serving worker (pid {pid}) exited with code {exit_code} before it listened; see its log above"


def clean_exit(exit_code: int | None) -> bool:
    """A worker stopped by the supervisor: 0 after its graceful stop, or killed by the signal before its stop
    sequence was in place (still starting)."""
    return exit_code in (0, -signal.SIGTERM, -signal.SIGINT)


def _work(argv: Sequence[str], listener: socket.socket, channel: Connection) -> None:
    """A worker process: serve until SIGTERM; tell the supervisor when listening, or why it could not start."""
    _stop_with_the_supervisor()
    from berg_serving.__main__ import serve_worker

    try:
        serve_worker(argv, [listener], lambda: channel.send(_LISTENING))
    except SystemExit as stop:
        if isinstance(stop.code, str):
            channel.send(stop.code)  # said once, by the supervisor, rather than once per worker
            raise SystemExit(1) from None
        raise


def _stop_with_the_supervisor() -> None:
    """SIGTERM this worker when the supervisor dies (even by SIGKILL), so no worker is left holding the ports."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    supervisor = multiprocessing.parent_process()
    if supervisor is not None and os.getppid() != supervisor.pid:  # it died before the line above
        raise SystemExit("the supervisor is gone")


@dataclass
class _Worker:
    process: SpawnProcess
    channel: Connection
    """The supervisor's end: ``listening`` once, or the message of a failed start."""
    listening: bool = False
    message: str | None = None
    channel_open: bool = True


class _Supervisor:
    def __init__(
        self, settings: ServingSettings[Any], argv: Sequence[str], listener: socket.socket, metrics_dir: str
    ) -> None:
        self._settings = settings
        self._argv = list(argv)
        self._listener = listener
        self._metrics_dir = metrics_dir
        self._spawn = multiprocessing.get_context("spawn")
        self._budget = RestartBudget()
        self._signals: list[int] = []
        self._workers: list[_Worker] = []

    def run(self) -> int | str:
        wake_up, woken = socket.socketpair()
        for end in (wake_up, woken):
            end.setblocking(False)
        previous_fd = signal.set_wakeup_fd(woken.fileno())
        previous = {signum: signal.signal(signum, self._on_signal) for signum in _STOP_SIGNALS}
        try:
            self._workers = [self._start() for _ in range(self._settings.workers)]
            failure = self._watch(wake_up)
            return self._stop(failure)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_fd)
            wake_up.close()
            woken.close()

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        self._signals.append(signum)

    def _start(self) -> _Worker:
        receiving, sending = self._spawn.Pipe(duplex=False)
        process = self._spawn.Process(
            target=_work, args=(self._argv, self._listener, sending), name="berg-serving-worker"
        )
        process.start()
        sending.close()  # the worker has its own copy: the channel reads EOF when the worker is gone
        log.info("started worker %s", process.pid)
        return _Worker(process, receiving)

    def _watch(self, wake_up: socket.socket) -> str | None:
        """Keep the workers running until a stop signal (None) or a failure that stops them all (its line)."""
        while not self._signals:
            waiting: list[Any] = [wake_up]
            for worker in self._workers:
                waiting.append(worker.process.sentinel)
                if worker.channel_open:
                    waiting.append(worker.channel)
            wait(waiting)
            with contextlib.suppress(BlockingIOError):
                while wake_up.recv(64):
                    pass
            for index, worker in enumerate(self._workers):
                self._read(worker)
                if worker.process.is_alive():
                    continue
                failure = self._bury(worker)
                if failure is not None:
                    return failure
                self._workers[index] = self._start()
        log.info("received %s; stopping the workers", signal.Signals(self._signals[0]).name)
        return None

    def _read(self, worker: _Worker) -> None:
        while worker.channel_open and worker.channel.poll():
            try:
                message = worker.channel.recv()
            except EOFError:
                worker.channel_open = False
                return
            if message == _LISTENING:
                worker.listening = True
                log.info("worker %s listening", worker.process.pid)
            else:
                worker.message = str(message)

    def _bury(self, worker: _Worker) -> str | None:
        """Account for a dead worker; the line that stops everything, or None to replace it."""
        from prometheus_client.multiprocess import mark_process_dead

        pid, code = worker.process.pid, worker.process.exitcode
        worker.channel.close()
        if pid is not None:
            mark_process_dead(pid, self._metrics_dir)  # type: ignore[no-untyped-call]  # unannotated upstream
        if not worker.listening:
            return start_failure(pid, code, worker.message)
        if not self._budget.allow(time.monotonic()):
            return (
                f"serving workers keep dying ({self._budget.limit + 1} within {self._budget.window_s:.0f}s, the last "
                f"pid {pid} with exit code {code}); giving up"
            )
        log.error("worker %s died (exit code %s); starting another", pid, code)
        return None

    def _stop(self, failure: str | None) -> int | str:
        """SIGTERM every worker, wait for their graceful stops, kill what outlives the grace period."""
        if failure is not None:
            log.error("%s; stopping the workers", failure)
        for worker in self._workers:
            if worker.process.pid is not None and worker.process.is_alive():
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._settings.grace_period_s + _KILL_MARGIN_S
        running = [worker.process for worker in self._workers]
        while running and (left := deadline - time.monotonic()) > 0:
            wait([process.sentinel for process in running], timeout=left)
            running = [process for process in running if process.is_alive()]
        for process in running:
            log.error("worker %s outlived the grace period; killing it", process.pid)
            process.kill()
        clean = True
        for worker in self._workers:
            worker.process.join()
            clean = clean and clean_exit(worker.process.exitcode)
            worker.channel.close()
        if failure is not None:
            return failure
        log.info("stopped")
        return 0 if clean else 1


def _bind(web: WebSettings) -> socket.socket:
    """The HTTP listening socket every worker serves, bound as uvicorn binds it for ``--workers``."""
    import uvicorn

    # bind_socket reads only the address; the app is each worker's, never loaded here.
    config = uvicorn.Config("berg_serving.server:app", host=web.host, port=web.port, log_config=None)
    try:
        return config.bind_socket()
    except SystemExit:  # uvicorn logged the reason (address in use, no such interface)
        raise SystemExit(f"cannot listen on {web.host}:{web.port} (BERG_SERVING_WEB__HOST, __PORT)") from None


def supervise(settings: ServingSettings[Any], argv: Sequence[str]) -> int | str:
    """Run ``settings.workers`` workers (``python -m berg_serving`` with ``argv``) until SIGTERM or SIGINT.

    Returns:
        The exit status: 0 after a graceful stop of every worker, 1 when one had to be killed, or the line saying
        why serving stopped (a worker could not start, or workers keep dying), for ``SystemExit``.
    """
    listener = _bind(settings.web)
    metrics_dir = tempfile.mkdtemp(prefix="berg-serving-metrics-")
    # Before any worker starts: a worker's prometheus_client reads it at import.
    for variable in _MULTIPROC_VARIABLES:
        os.environ[variable] = metrics_dir
    log.info(
        "supervising %d workers",
        settings.workers,
        extra={"http_port": listener.getsockname()[1], "metrics_dir": metrics_dir},
    )
    try:
        return _Supervisor(settings, argv, listener, metrics_dir).run()
    finally:
        listener.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
