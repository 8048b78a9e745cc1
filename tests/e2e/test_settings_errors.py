"""A bad setting, as a user sets it: every entry point says so in one line on stderr, naming the variable.

The `berg` command and each service's ``python -m`` entry point run as real
processes with one bad variable each: a list or model typed one that is not
JSON (pydantic-settings fails while decoding it, before validation) and a
scalar one that fails validation. The workspace installs two use cases, so the user names one
(``BERG_USE_CASE``, as ``make`` does); naming none, or one not installed, is itself such a line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# (entry point, variable of a list or model typed setting, variable of a scalar setting)
ENTRY_POINTS = [
    (["-m", "berg_app", "status"], "BERG_SERVICES", "BERG_TOPIC_PARTITIONS"),
    (["-m", "berg_app", "up"], "BERG_PORTS", "BERG_STARTUP_TIMEOUT_S"),
    (["-m", "berg_ingestion"], "BERG_INGESTION_KAFKA", "BERG_INGESTION_MAX_RECORD_BYTES"),
    (["-m", "berg_validation"], "BERG_VALIDATION_RULES", "BERG_VALIDATION_BATCH_MAX_RECORDS"),
    (["-m", "berg_features"], "BERG_FEATURES_KAFKA", "BERG_FEATURES_ALLOWED_LATENESS_S"),
    (["-m", "berg_serving"], "BERG_SERVING_GRPC", "BERG_SERVING_POLL_INTERVAL_S"),
    (["-m", "berg_monitoring"], "BERG_MONITORING_WEB", "BERG_MONITORING_DRIFT_CAPACITY"),
    (["-m", "berg_controller"], "BERG_CONTROLLER_LOCAL", "BERG_CONTROLLER_DATABASE_TIMEOUT_S"),
]

CASES = [
    pytest.param(command, variable, value, id=f"{command[1]}{'-' + command[2] if len(command) > 2 else ''}-{kind}")
    for command, complex_variable, scalar_variable in ENTRY_POINTS
    for kind, variable, value in (("complex", complex_variable, "notjson"), ("scalar", scalar_variable, "lots"))
]


SERVICES = [command for command, _, _ in ENTRY_POINTS if command[1] != "berg_app"]


def _run(command: list[str], settings: dict[str, str], tmp_path: Path) -> str:
    """The one line ``command`` printed on stderr, run with the user's environment less every ``BERG_``
    variable, plus ``settings``; it must have failed and printed nothing else."""
    clean = {key: item for key, item in os.environ.items() if not key.startswith("BERG_")}
    env = {**clean, "BERG_STATE_DIR": str(tmp_path), **settings}
    # The bound only stops a process that hangs: a loaded machine takes a minute or more to import a service.
    result = subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900, check=False
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize(("command", "variable", "value"), CASES)
def test_a_bad_setting_is_one_line_on_stderr_naming_the_variable(
    command: list[str], variable: str, value: str, tmp_path: Path
) -> None:
    line = _run(command, {"BERG_USE_CASE": "fraud", variable: value}, tmp_path)
    assert variable in line
    assert "invalid settings" in line


@pytest.mark.parametrize("command", SERVICES, ids=[command[1] for command in SERVICES])
@pytest.mark.parametrize(
    ("use_case", "says"), [(None, "2 use cases are installed"), ("nope", "no use case named 'nope'")]
)
def test_a_service_without_an_installed_use_case_named_says_so_in_one_line(
    command: list[str], use_case: str | None, says: str, tmp_path: Path
) -> None:
    # The controller reads its own settings first; its one required one is given.
    settings = {"BERG_CONTROLLER_WEBHOOK_TOKEN": "token"}
    line = _run(command, settings if use_case is None else {**settings, "BERG_USE_CASE": use_case}, tmp_path)
    assert line.startswith("BERG_USE_CASE: ")
    assert says in line
    assert "clicks, fraud" in line
