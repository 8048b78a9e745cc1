"""`berg simulate` as a user runs it, against the session stack's broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from berg_app.stack.local import LocalStack
from tests.helpers import free_port_table

pytestmark = pytest.mark.e2e

BERG = [sys.executable, "-m", "berg_app"]


def env_for(ports: dict[str, int]) -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200"}
    for name, port in ports.items():
        env[f"BERG_PORTS__{name.upper()}"] = str(port)
    return env


def berg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BERG, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def count_in_summary(stdout: str, row: str) -> int:
    match = re.search(rf"{re.escape(row)}\s*│\s*(\d+)", stdout)
    assert match, stdout
    return int(match.group(1))


def test_simulate_sends_the_asked_number_of_scored_records(stack: LocalStack) -> None:
    result = berg(
        env_for(stack.settings.ports.as_dict()),
        "simulate",
        "--scenario=malformed",
        "--scored-events=80",
        "--malformed-share=0.5",
        "--population=20",
        "--seed=3",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert count_in_summary(result.stdout, "on transactions.raw") == 80
    assert count_in_summary(result.stdout, "malformed") > 0


def test_simulate_without_a_broker_says_how_to_start_one() -> None:
    result = berg(env_for(free_port_table().as_dict()), "simulate", "--scored-events=5")
    assert result.returncode == 1
    assert "berg up" in result.stdout
