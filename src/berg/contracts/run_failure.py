"""Why a pipeline run failed: the report a run command leaves for the retraining controller.

The controller's local launcher names a file in ``BERG_RUN_FAILURE_FILE``
(``<run dir>/failure.json``); a command that fails (``berg pipeline run``) writes
a :class:`RunFailureV1` there: the step that failed and the head of its error.
The controller puts both on the run record (``GET /runs``, ``berg runs``). A
command that writes none still gets the last lines of its output recorded.

The error is bounded (:data:`MAX_ERROR_LINES` lines, :data:`MAX_ERROR_BYTES`
bytes) and cleaned by :func:`error_head`: terminal colours go, passwords in URLs
and the values of secret-named environment variables are masked. Whoever writes
a report and whoever reads one both apply it.

Example:
    >>> failure = RunFailureV1(step="build-dataset", error=error_head(traceback_text, os.environ))
    >>> write_run_failure(Path(os.environ[RUN_FAILURE_FILE_ENV]), failure)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, StringConstraints, ValidationError

from berg.contracts._types import CONTRACT_CONFIG

__all__ = [
    "MAX_ERROR_BYTES",
    "MAX_ERROR_LINES",
    "MAX_STEP",
    "RUN_FAILURE_FILE_ENV",
    "RunFailureV1",
    "error_head",
    "read_run_failure",
    "write_run_failure",
]

RUN_FAILURE_FILE_ENV = "BERG_RUN_FAILURE_FILE"
"""The environment variable naming where a failing run command writes its report."""
MAX_ERROR_LINES = 20
MAX_ERROR_BYTES = 2048
MAX_STEP = 200
"""Longest step name kept."""

_MASK = "***"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:)[^\s@/]+@")
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY", re.IGNORECASE)
_MIN_SECRET = 6
"""Shorter values are not masked: masking ``true`` or ``8080`` everywhere would hide more than it protects."""


class RunFailureV1(BaseModel):
    """Why a run failed, as the run command saw it."""

    model_config = CONTRACT_CONFIG

    step: Annotated[str, StringConstraints(min_length=1, max_length=MAX_STEP)] | None = None
    """The pipeline step (task) that failed; None when the run failed outside any step."""
    error: Annotated[str, StringConstraints(max_length=MAX_ERROR_BYTES)]
    """The first lines of the error (see :func:`error_head`)."""


def _secret_values(environment: Mapping[str, str]) -> list[str]:
    values = {v for k, v in environment.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET}
    return sorted(values, key=len, reverse=True)  # a longer secret that contains a shorter one goes first


def _bounded(text: str) -> str:
    lines = text.splitlines()[:MAX_ERROR_LINES]
    head = "\n".join(lines).encode()[:MAX_ERROR_BYTES]
    return head.decode(errors="ignore")  # a cut through a multi-byte character drops that character


def error_head(text: str, environment: Mapping[str, str] | None = None) -> str:
    """The first lines of ``text``, bounded and cleaned for a run record.

    Args:
        text: the error (an exception's lines, the end of a log).
        environment: the run's environment; the values of its secret-named variables
            (``*TOKEN*``, ``*PASSWORD*``, ``*SECRET*``...) are masked.

    Returns:
        At most :data:`MAX_ERROR_LINES` lines and :data:`MAX_ERROR_BYTES` UTF-8 bytes, without terminal
        colour codes, passwords in URLs replaced by ``***``, blank lines around it removed.
    """
    cleaned = _URL_PASSWORD.sub(rf"\g<head>{_MASK}@", _ANSI.sub("", text))
    for secret in _secret_values(environment or {}):
        cleaned = cleaned.replace(secret, _MASK)
    return _bounded(cleaned.strip("\n")).rstrip()


def write_run_failure(path: Path, failure: RunFailureV1) -> None:
    """Write the report atomically, readable by its owner only (it may quote the data)."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(failure.model_dump_json().encode())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_run_failure(path: Path) -> RunFailureV1 | None:
    """The report at ``path``; None when there is none or it is not a valid report (it is only a hint)."""
    try:
        return RunFailureV1.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None
