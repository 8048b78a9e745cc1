"""The interface every launcher implements, and what polling a run answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from berg_controller.store import RunRecord

__all__ = ["LaunchError", "LaunchUnavailable", "Launcher", "Progress", "ProgressState", "RecordStarted"]

ProgressState = Literal["running", "succeeded", "failed", "not_started"]

RecordStarted = Callable[[str, str], None]
"""``record_started(external_id, command)``: the launcher calls it once the run has an id of its own (a pid, a
Kubeflow run id); it writes both to the database and raises if it cannot."""


class LaunchError(Exception):
    """The run cannot be started (a bad command, a refused pipeline): it is recorded as failed."""


class LaunchUnavailable(Exception):
    """The run could not be started now (the Kubeflow API is down): it stays pending and is tried again."""


@dataclass(frozen=True)
class Progress:
    """Where a started run stands."""

    state: ProgressState
    """``not_started``: the launcher knows the pipeline never ran (a start interrupted before it let go)."""
    detail: str = ""
    exit_code: int | None = None
    failed_step: str | None = None
    """For a failed run: the pipeline step that failed, when known."""
    error: str | None = None
    """For a failed run: the head of its error (``berg.contracts.run_failure.error_head``)."""


class Launcher(Protocol):
    """Starts, follows and stops pipeline runs; every method may block on I/O (call it off the event loop)."""

    kind: str
    """``local`` or ``kfp``: recorded with each run."""

    def start(self, run: RunRecord, record_started: RecordStarted) -> str:
        """Start ``run`` (pending) and return its external id.

        ``record_started`` is called before the pipeline itself may begin where the
        launcher can hold it back (the local launcher), else as soon as the run exists.
        Starting the same run id again after an interruption never runs the pipeline twice.

        Raises:
            LaunchError: it can never start.
            LaunchUnavailable: try again later.
        """
        ...

    def poll(self, run: RunRecord) -> Progress:
        """Where a running run stands.

        Raises:
            LaunchUnavailable: the launcher cannot tell right now.
        """
        ...

    def stop(self, run: RunRecord) -> None:
        """Stop a running run (it ran past the timeout)."""
        ...

    def close(self) -> None:
        """Release clients and reap finished children; runs in progress keep going."""
        ...
