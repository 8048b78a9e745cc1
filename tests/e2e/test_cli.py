"""The `berg` command as a user runs it: doctor, up, status, demo, down, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port_table

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BERG = [sys.executable, "-m", "berg"]


def berg(env: dict[str, str], *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BERG, *args], capture_output=True, text=True, env=env, timeout=timeout_s, check=False)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose command line or environment mentions ``text`` (the state directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environment = (entry / "environ").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if (text in command or text in environment) and state != "Z":
            found.append(command)
    return found


@pytest.fixture
def user_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ports = free_port_table()
    env = {
        **os.environ,
        "BERG_STATE_DIR": str(tmp_path_factory.mktemp("cli")),
        "BERG_SCRAPE_INTERVAL_S": "1",
        "COLUMNS": "200",
    }
    for name, port in ports.as_dict().items():
        env[f"BERG_PORTS__{name.upper()}"] = str(port)
    return env


def test_doctor_passes_here_and_says_how_to_fix_what_is_missing(user_env: dict[str, str]) -> None:
    assert berg(user_env, "doctor").returncode == 0
    broken = berg({**user_env, "BERG_PROMETHEUS_BIN": "no-such-prometheus"}, "doctor")
    assert broken.returncode == 1
    assert "apt-get install prometheus" in broken.stdout


def test_up_status_demo_down_leaves_no_process_behind(user_env: dict[str, str]) -> None:
    state_dir = user_env["BERG_STATE_DIR"]
    try:
        up = berg(user_env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "transactions.raw" in up.stdout

        status = berg(user_env, "status")
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("healthy") == 9
        # Serving is live and waits for the first promoted model.
        assert "live, not ready yet" in status.stdout
        # supervisord, kafka, prometheus, alertmanager and the six Berg services
        assert len(processes_mentioning(state_dir)) >= 10

        demo = berg(user_env, "demo", "--story", "data-plane", "--transactions", "400", "--malformed-share", "0.1")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "arrived on transactions.valid" in demo.stdout
        assert "refused by ingestion: undecodable" in demo.stdout
        assert "refused by validation: expectation_failed" in demo.stdout
        assert "records consumed by ingestion, as scraped by Prometheus" in demo.stdout
        # The features service aggregated the run into Feast, and the demo read it back online.
        assert "Feast online store: users (user_transaction_aggregates)" in demo.stdout
        assert "Feast online store: merchants (merchant_aggregates)" in demo.stdout
    finally:
        down = berg(user_env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_mentioning(state_dir) == []
    after = berg(user_env, "status")
    assert after.returncode == 1
    assert "DOWN" in after.stdout


def test_up_refuses_ports_that_are_taken(user_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(user_env["BERG_PORTS__PROMETHEUS"])))
        blocker.listen()
        result = berg(user_env, "up")
    assert result.returncode == 1
    assert "ports already in use" in result.stdout
    assert processes_mentioning(user_env["BERG_STATE_DIR"]) == []
