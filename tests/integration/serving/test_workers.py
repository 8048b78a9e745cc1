"""``BERG_SERVING_WORKERS=2``: two worker processes behind one supervisor, on the same HTTP and gRPC ports.

One server goes through it all: V1 predictions are right and land on both workers (each worker holds some of
the accepted connections, read from ``/proc``); ``/metrics``, answered by either worker, counts every request of
both; a worker killed with SIGKILL is replaced and serving goes on (its counts stay in the sum); SIGTERM to the
supervisor stops both workers gracefully, every request in flight answered, and the whole process tree exits 0.

The test-only ``debug_delay_s`` holds each prediction for a while (without blocking the event loop), so requests
are surely in flight when SIGTERM arrives; the in-flight gauge, summed over the workers, says when they all are.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from kserve import InferenceGRPCClient
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_for
from tests.integration.serving.conftest import MODEL, ServingProcess, ServingWorld
from tests.integration.serving.scoring import expected_scores, infer_request

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKERS = 2
DELAY_S = 1.0
DRAIN_S = 1.0
GRACE_S = 10.0
CONNECTIONS = 6
"""Connections opened at once per round, each sending one prediction."""
ROUNDS = 20
"""At most this many rounds for the connections to reach both workers (each round is a fresh set)."""
IN_FLIGHT_REST = 8
IN_FLIGHT_GRPC = 4


def worker_pids(server: ServingProcess) -> set[int]:
    """The workers that serve a model now: ``berg_serving_model_info`` has one series per live worker."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    return {
        int(sample.labels["pid"])
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "berg_serving_model_info"
    }


def all_listening(server: ServingProcess, pids: set[int]) -> bool:
    """Whether the supervisor has logged each of ``pids`` as listening (a worker shows in ``/metrics`` once its
    champion is loaded, a little before it listens)."""
    log = server.log_path.read_text(errors="replace").rsplit("supervising", 1)[-1]
    return all(f"worker {pid} listening" in log for pid in pids)


def requests_total(server: ServingProcess) -> float:
    """``berg_serving_requests_total`` summed over its labels, as ``/metrics`` serves it."""
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "berg_serving_requests_total"
    )


def connection_holders(pids: set[int], port: int) -> set[int]:
    """Which of ``pids`` hold an accepted (established) TCP connection on local ``port``, from ``/proc``."""
    accepted = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                accepted.add(fields[9])  # the socket's inode
    holders = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().name
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:[") and target[8:-1] in accepted:
                holders.add(pid)
    return holders


def descendants(root: int) -> set[int]:
    """``root``'s live descendants, by the parent ids in ``/proc``."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    found, pending = set(), [root]
    while pending:
        parent = pending.pop()
        children = {pid for pid, ppid in parents.items() if ppid == parent}
        found |= children
        pending += children
    return found


async def predict_on_fresh_connections(
    server: ServingProcess, rows: list[dict[str, Any]], clients: list[httpx.AsyncClient]
) -> list[dict[str, Any]]:
    """One prediction per row, each on a connection of its own, all at once; the connections stay open."""
    fresh = [httpx.AsyncClient(timeout=30) for _ in rows]
    clients += fresh
    answers = await asyncio.gather(
        *(
            client.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": [row]})
            for client, row in zip(fresh, rows, strict=True)
        )
    )
    for answer in answers:
        assert answer.status_code == 200, answer.text
    return [answer.json()["predictions"][0] for answer in answers]


def test_two_workers_share_the_ports_the_metrics_and_the_stop(
    serving_world: ServingWorld, start_server: Any, tmp_path: Path
) -> None:
    registry = serving_world.registry(tmp_path / "registry")
    server: ServingProcess = start_server(
        "fused",
        serving_world,
        registry,
        WORKERS=str(WORKERS),
        DEBUG_DELAY_S=str(DELAY_S),
        DRAIN_DELAY_S=str(DRAIN_S),
        GRACE_PERIOD_S=str(GRACE_S),
    )
    assert server.process is not None
    supervisor = server.process.pid
    wait_for(lambda: len(worker_pids(server)) == WORKERS, 400, "both workers to serve the champion")
    workers = worker_pids(server)
    wait_for(lambda: all_listening(server, workers), 400, "both workers to listen")
    assert workers <= descendants(supervisor)
    rows = serving_world.transactions(CONNECTIONS, seed=51)
    scores, decisions = expected_scores(serving_world, registry, rows)
    sent = 0

    # (a) Right answers, from both workers: new connections until each worker holds some.
    async def spread() -> int:
        clients: list[httpx.AsyncClient] = []
        try:
            for round_ in range(1, ROUNDS + 1):
                answers = await predict_on_fresh_connections(server, rows, clients)
                np.testing.assert_allclose([a["score"] for a in answers], scores, rtol=1e-6)
                assert [a["decision"] for a in answers] == decisions
                assert {a["model_version"] for a in answers} == {"v0001"}
                if connection_holders(workers, server.port) == workers:
                    return round_
            holders = connection_holders(workers, server.port)
            raise AssertionError(f"{ROUNDS * CONNECTIONS} connections, all accepted by {holders} of {workers}")
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))

    rounds = asyncio.run(spread())
    sent += rounds * CONNECTIONS

    # (b) /metrics, whichever worker answers it, counts the requests of both.
    assert requests_total(server) == sent

    # (c) A worker killed outright is replaced; serving goes on, and the dead worker's counts stay in the sum.
    killed = min(workers)
    os.kill(killed, signal.SIGKILL)
    wait_for(
        lambda: killed not in worker_pids(server) and len(worker_pids(server)) == WORKERS,
        400,
        "the supervisor to replace the killed worker",
    )
    workers = worker_pids(server)
    wait_for(lambda: all_listening(server, workers), 400, "the new worker to listen")  # else SIGTERM finds it starting
    assert workers <= descendants(supervisor)
    assert server.alive()

    async def predict_once() -> list[dict[str, Any]]:
        clients: list[httpx.AsyncClient] = []
        try:
            return await predict_on_fresh_connections(server, rows, clients)
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))

    answers = asyncio.run(predict_once())
    np.testing.assert_allclose([a["score"] for a in answers], scores, rtol=1e-6)
    sent += CONNECTIONS
    assert requests_total(server) == sent

    # (d) SIGTERM to the supervisor: every request in flight on either worker is answered, then all exit 0.
    tree = descendants(supervisor)
    held = serving_world.transactions(IN_FLIGHT_REST + IN_FLIGHT_GRPC, seed=52)

    async def stop_with_requests_in_flight() -> tuple[list[Any], list[Any]]:
        clients: list[httpx.AsyncClient] = [httpx.AsyncClient(timeout=30) for _ in range(IN_FLIGHT_REST)]
        grpc = InferenceGRPCClient(server.grpc_url, retries=0, timeout=30)
        try:
            rest = [
                asyncio.create_task(client.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": [row]}))
                for client, row in zip(clients, held[:IN_FLIGHT_REST], strict=True)
            ]
            grpc_calls = [
                asyncio.create_task(grpc.infer(infer_request([row], binary=True))) for row in held[IN_FLIGHT_REST:]
            ]
            await asyncio.to_thread(
                wait_for,
                lambda: server.metric("berg_serving_requests_in_flight") == IN_FLIGHT_REST + IN_FLIGHT_GRPC,
                30,
                "every request to be in flight",
            )
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            return (
                await asyncio.gather(*rest, return_exceptions=True),
                await asyncio.gather(*grpc_calls, return_exceptions=True),
            )
        finally:
            await grpc.close()
            await asyncio.gather(*(client.aclose() for client in clients))

    rest, grpc_answers = asyncio.run(stop_with_requests_in_flight())
    failures = [r for r in rest if isinstance(r, BaseException) or r.status_code != 200]
    assert not failures, failures
    grpc_failures = [r for r in grpc_answers if isinstance(r, BaseException)]
    assert not grpc_failures, grpc_failures
    code = server.process.wait(timeout=GRACE_S + 10)
    assert code == 0, server.log_tail()
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in tree), 10, "the whole process tree to exit")
    log = server.log_path.read_text().rsplit("supervising", 1)[1]  # the module's servers share the log file
    assert log.count("closing the listeners") == WORKERS  # each live worker's graceful stop (not the killed one's)


def test_a_worker_that_cannot_start_stops_the_supervisor(
    serving_world: ServingWorld, start_server: Any, tmp_path: Path
) -> None:
    # A listener without SO_REUSEPORT on the gRPC port: every worker's bind fails, after its whole assembly.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server: ServingProcess = start_server(
            "fused",
            serving_world,
            serving_world.registry(tmp_path / "registry"),
            wait=False,
            WORKERS=str(WORKERS),
            GRPC__PORT=str(taken.getsockname()[1]),
        )
        assert server.process is not None
        code = server.process.wait(timeout=400)
    assert code == 1, server.log_tail()
    log = server.log_path.read_text().rsplit("supervising", 1)[1]  # the module's servers share the log file
    assert "before it listened; see its log above" in log, server.log_tail()
    workers = [int(pid) for pid in re.findall(r"started worker (\d+)", log)]
    assert len(workers) == WORKERS
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
