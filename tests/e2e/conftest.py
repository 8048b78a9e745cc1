"""Fixtures of the end-to-end tests: a user's environment for the `berg` command on a stack of its own."""

from __future__ import annotations

import os

import pytest

from tests.helpers import free_port_table


@pytest.fixture
def user_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ports = free_port_table()
    env = {
        **os.environ,
        "BERG_STATE_DIR": str(tmp_path_factory.mktemp("cli")),
        "BERG_SCRAPE_INTERVAL_S": "1",
        # Generous: it only bounds a hang (six services importing at once take minutes on a loaded 2-core machine).
        "BERG_STARTUP_TIMEOUT_S": "600",
        "COLUMNS": "200",
    }
    for name, port in ports.as_dict().items():
        env[f"BERG_PORTS__{name.upper()}"] = str(port)
    return env
