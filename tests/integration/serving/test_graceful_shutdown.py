"""SIGTERM with slow requests in flight: readiness turns 503 first, every request completes, the process exits
within the grace period.

The test-only ``debug_delay_s`` makes every prediction take 3 seconds (without
blocking the server's event loop), so requests are surely in flight when SIGTERM
arrives; the server's in-flight gauge says when they all are.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from kserve import InferenceGRPCClient

from tests.helpers import wait_for
from tests.integration.serving.conftest import MODEL, ServingProcess, ServingWorld
from tests.integration.serving.scoring import infer_request

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DELAY_S = 3.0
DRAIN_S = 2.5
GRACE_S = 12.0
REST_REQUESTS = 12
GRPC_REQUESTS = 6


def test_sigterm_lets_every_request_in_flight_finish(
    serving_world: ServingWorld, start_server: Any, tmp_path: Path
) -> None:
    server: ServingProcess = start_server(
        "fused",
        serving_world,
        serving_world.registry(tmp_path / "registry"),
        DEBUG_DELAY_S=str(DELAY_S),
        DRAIN_DELAY_S=str(DRAIN_S),
        GRACE_PERIOD_S=str(GRACE_S),
    )
    rows = serving_world.transactions(REST_REQUESTS + GRPC_REQUESTS + 1, seed=41)
    assert server.process is not None

    async def scenario() -> tuple[list[Any], list[Any], int, float]:
        async with httpx.AsyncClient(timeout=30) as http:
            grpc = InferenceGRPCClient(server.grpc_url, retries=0, timeout=30)
            try:
                rest = [
                    asyncio.create_task(http.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": [row]}))
                    for row in rows[:REST_REQUESTS]
                ]
                grpc_calls = [
                    asyncio.create_task(grpc.infer(infer_request([row], binary=True))) for row in rows[REST_REQUESTS:-1]
                ]
                await asyncio.to_thread(
                    wait_for,
                    lambda: server.metric("berg_serving_requests_in_flight") == REST_REQUESTS + GRPC_REQUESTS,
                    10,
                    "every request to be in flight",
                )
                sigterm_at = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                # Draining: not ready, but still serving what arrives before the listeners close.
                await asyncio.to_thread(
                    wait_for, lambda: not server.ready(), DRAIN_S, "readiness to turn 503 while draining"
                )
                readiness = (await http.get(f"{server.url}/readyz")).status_code
                late = await http.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": rows[-1:]})
                assert late.status_code == 200, late.text
                return (
                    await asyncio.gather(*rest, return_exceptions=True),
                    await asyncio.gather(*grpc_calls, return_exceptions=True),
                    readiness,
                    sigterm_at,
                )
            finally:
                await grpc.close()

    rest, grpc_answers, readiness, sigterm_at = asyncio.run(scenario())
    assert readiness == 503
    failures = [r for r in rest if isinstance(r, BaseException) or r.status_code != 200]
    assert not failures, failures
    assert all(r.json()["predictions"][0]["model_version"] == "v0001" for r in rest)
    grpc_failures = [r for r in grpc_answers if isinstance(r, BaseException)]
    assert not grpc_failures, grpc_failures
    assert all(r.model_version == "v0001" for r in grpc_answers)
    code = server.process.wait(timeout=GRACE_S + 5)
    exited_after = time.monotonic() - sigterm_at
    assert code == 0, server.log_tail()
    assert exited_after < GRACE_S, f"exited {exited_after:.1f}s after SIGTERM; the grace period is {GRACE_S}s"
    assert "closing the listeners" in server.log_path.read_text()
