"""A consuming service whose broker is not there yet: not ready, and SIGTERM ends its wait within one start-up
attempt (a pod told to stop must not outlive its grace period retrying a broker that is not there).

The service runs as its own process, as in a pod: a real SIGTERM, and kafka-python's sockets of the refused
attempts and the service's logging stay out of the test process.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from berg.service import STARTUP_ATTEMPT_MS
from tests.helpers import free_port, wait_for
from tests.processes import ServiceProcess

pytestmark = pytest.mark.integration

GRACE_PERIOD_S = 30
"""The chart's terminationGracePeriodSeconds: after it, the kubelet kills the container."""


def _status(port: int, path: str) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code
    except httpx.HTTPError:
        return None


def test_waiting_for_kafka_is_not_ready_and_stops_on_sigterm(tmp_path: Path) -> None:
    service = ServiceProcess(
        "berg_ingestion",
        "BERG_INGESTION_",
        {
            # Nothing listens there: every attempt is refused, and the wait would last STARTUP_TIMEOUT_S.
            "KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "STARTUP_TIMEOUT_S": "3600",
            "LANDING_DIR": str(tmp_path / "landing"),
        },
        tmp_path,
        "ingestion-before-kafka",
    )
    service.start()
    try:
        # Only bounds a hang: a loaded machine can take minutes to import the service's libraries.
        wait_for(lambda: _status(service.port, "/healthz") == 200 or not service.alive(), 600, "the health endpoint")
        assert service.alive(), service.log_tail()
        assert _status(service.port, "/readyz") == 503, "ready before it reached Kafka"
        wait_for(lambda: "Kafka not reachable yet" in service.log_tail(200), 600, "a refused start-up attempt")

        assert service.process is not None
        service.process.send_signal(signal.SIGTERM)
        # One start-up attempt is STARTUP_ATTEMPT_MS; the grace period leaves room for a busy machine.
        assert STARTUP_ATTEMPT_MS / 1000 * 3 <= GRACE_PERIOD_S
        assert service.process.wait(timeout=GRACE_PERIOD_S) == 0, service.log_tail()
        assert "asked to stop while waiting for Kafka" in service.log_tail(200)
    finally:
        service.kill9()
