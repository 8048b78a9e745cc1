"""A consuming service whose broker is not there yet: not ready, and a stop request ends its wait within one
start-up attempt (a pod told to stop must not outlive its grace period retrying a broker that is not there)."""

from __future__ import annotations

import gc
import threading

import httpx
import pytest

from berg.service import STARTUP_ATTEMPT_MS, ConsumerServiceSettings, ServiceContext, run_consumer_service
from berg.settings import KafkaSettings
from berg.web.app import WebSettings
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.integration


def _status(port: int, path: str) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code
    except httpx.HTTPError:
        return None


# kafka-python leaves the socket of a refused bootstrap attempt for the garbage collector to close.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_waiting_for_kafka_is_not_ready_and_stops_on_request() -> None:
    port = free_port()
    settings = ConsumerServiceSettings(
        service_name="before-kafka",
        # Nothing listens there: every attempt fails, and the wait would last startup_timeout_s.
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}"),
        web=WebSettings(host="127.0.0.1", port=port),
        startup_timeout_s=3600,
    )
    stop = threading.Event()

    def never_built(_: ServiceContext) -> None:
        raise AssertionError("the handler is built only once Kafka answers")

    service = threading.Thread(
        target=run_consumer_service,
        kwargs={"settings": settings, "topics": ["nowhere"], "build_handler": never_built, "stop": stop},
        daemon=True,
    )
    service.start()
    wait_for(lambda: _status(port, "/healthz") == 200, 120, "the health endpoint to answer")
    assert _status(port, "/readyz") == 503

    stop.set()
    # Within one start-up attempt: what a pod has of its 30 s grace period, on a busy machine too.
    service.join(timeout=STARTUP_ATTEMPT_MS / 1000 * 4)
    assert not service.is_alive(), "the service kept waiting for Kafka after it was asked to stop"
    assert _status(port, "/healthz") is None, "the HTTP server still answers after the service stopped"
    # Collect kafka-python's leaked sockets here, under this test's warning filter, not in a later test.
    gc.collect()
