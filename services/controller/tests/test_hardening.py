"""What the controller gives away to whom: nothing to an unauthenticated sender, no database error in a reply,
no readable files for other users, no database password anywhere it prints.

The controller's app runs in this process on uvicorn (its real store and local
launcher) or as ``python -m berg_controller``; the failing database is a real
PostgreSQL stopped under it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from services.controller.tests.helpers import (
    TOKEN,
    InProcessController,
    alert,
    kill_fake_pipelines,
    running_controller,
    settings_for,
    webhook,
)

from tests.helpers import free_port
from tests.servers import running_postgres

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[InProcessController]:
    with running_controller(settings_for(tmp_path, sleep_s=0.2)) as running:
        yield running
    kill_fake_pipelines(tmp_path / "starts.txt")


@pytest.mark.parametrize("path", ["/alerts", "/runs"])
def test_an_unauthenticated_request_is_answered_before_its_body_arrives(
    controller: InProcessController, path: str
) -> None:
    """The reply comes while most of the declared body was never sent: the controller did not wait to read,
    let alone parse, it (the body limit is 1 MiB)."""
    address = urlsplit(controller.url)
    assert address.hostname is not None
    assert address.port is not None
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address.hostname}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000000\r\n\r\n"
    ).encode()
    # The timeout only bounds a hang: a controller that waits for the body never answers.
    with socket.create_connection((address.hostname, address.port), timeout=60) as connection:
        connection.sendall(head + b'{"version": "4", "model": ')
        status_line = connection.makefile("rb").readline()
    assert status_line.startswith(b"HTTP/1.1 401"), status_line


def test_a_503_never_echoes_the_database_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with contextlib.ExitStack() as database:
        server = database.enter_context(running_postgres())
        settings = settings_for(tmp_path, database_url=server.sqlalchemy_url(), database_timeout_s=2)
        with running_controller(settings) as controller:
            assert controller.client.post(f"{controller.url}/alerts", json=webhook(alert()), headers=AUTH).is_success
            database.close()  # PostgreSQL is stopped under the running controller
            caplog.set_level(logging.WARNING, logger="berg_controller")
            replies = [
                controller.client.post(f"{controller.url}/alerts", json=webhook(alert()), headers=AUTH),
                controller.client.post(f"{controller.url}/runs", json={"model": "fraud"}, headers=AUTH),
                controller.client.get(f"{controller.url}/runs"),
                controller.client.get(f"{controller.url}/triggers"),
            ]
    for reply in replies:
        assert reply.status_code == 503, reply.text
        assert reply.headers["retry-after"] == "5"
        assert reply.json()["detail"] == "the controller's database is unavailable; try again later"
        for leak in (str(server.port), server.host, server.user, "psycopg", "SQL", "connection"):
            assert leak not in reply.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert str(server.port) in logged, "the error itself goes to the log"
    kill_fake_pipelines(tmp_path / "starts.txt")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_run_logs_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask, which leaves new files readable by everyone
    try:
        with running_controller(settings_for(tmp_path, sleep_s=0.2)) as controller:
            assert controller.client.post(f"{controller.url}/runs", json={"model": "fraud"}, headers=AUTH).is_success
            (run,) = controller.wait_finished()
    finally:
        os.umask(previous)
        kill_fake_pipelines(tmp_path / "starts.txt")
    state = tmp_path / "controller"
    run_dir = state / "runs" / run["id"]
    files = [state / "controller.db", *state.glob("controller.db-*"), *run_dir.iterdir()]
    expected = {"output.log", "command.json", f"exit-{run['external_id']}.json"}
    assert {path.name for path in run_dir.iterdir()} >= expected
    assert {path.name: oct(mode(path)) for path in files} == {path.name: "0o600" for path in files}
    folders = [state, state / "runs", run_dir]
    assert {str(path): oct(mode(path)) for path in folders} == {str(path): "0o700" for path in folders}


def test_the_database_url_is_never_printed(tmp_path: Path) -> None:
    password = "pw-do-not-print-7f3a"
    base = {
        **os.environ,
        "BERG_CONTROLLER_WEBHOOK_TOKEN": TOKEN,
        "BERG_CONTROLLER_STATE_DIR": str(tmp_path / "controller"),
        "BERG_CONTROLLER_DATABASE_TIMEOUT_S": "1",
        "BERG_CONTROLLER_WEB__PORT": str(free_port()),
    }
    malformed = f"postgres ql://berg:{password}@db/controller"
    unreachable = f"postgresql+psycopg://berg:{password}@127.0.0.1:{free_port()}/controller"
    outputs = {}
    for name, url in (("malformed", malformed), ("unreachable", unreachable)):
        finished = subprocess.run(
            [sys.executable, "-m", "berg_controller"],
            env={**base, "BERG_CONTROLLER_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert finished.returncode != 0
        outputs[name] = finished.stdout + finished.stderr
        assert password not in outputs[name]
    assert "BERG_CONTROLLER_DATABASE_URL: " in outputs["malformed"]
    assert "Traceback" not in outputs["malformed"]
    assert "cannot open the controller database" in outputs["unreachable"]
