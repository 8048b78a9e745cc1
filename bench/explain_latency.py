"""Serving: what ``:explain`` costs next to ``:predict``, on the same fused server, in one run.

Fills a fresh Feast store with simulated history (``tests/feature_world.py``), registers
the same 100-tree model over the served features as ``bench/serving_latency.py``, and
starts one fused server (``python -m berg_serving``, prediction log off). Both verbs
get the same V1 body (one transaction by a known user) and go through the same
validation, Feast lookup and on-demand features; explain then predicts again and
computes XGBoost's TreeSHAP contributions on a DMatrix, and answers every feature's
contribution and the top-k reasons. Before timing, each verb's score for the same
transaction must agree, and the explanation's margin must give its score.

1. latency with one request in flight, predict and explain in turn per transaction
   (the order alternating), and the server's own stage means (its ``/metrics``:
   ``predict`` is the model call, ``explain`` the model call with the contributions);
2. ``--concurrency`` requests in flight, ``--rounds`` interleaved rounds per verb:
   throughput, p50/p99, and the server process's CPU time per request
   (``/proc/<pid>/stat``).

It prints explain / predict for each figure. The client is the raw keep-alive client
of ``bench/serving_latency.py``.

    uv run --locked python bench/explain_latency.py
    uv run --locked python bench/explain_latency.py --requests 1000 --top-k 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import xgboost as xgb
from serving_latency import (
    MODEL,
    ChildServer,
    Connection,
    Latency,
    Load,
    berg_server,
    register_model,
    stage_means,
    stage_totals,
    transactions,
)

PREDICT = f"/v1/models/{MODEL}:predict"


def explain_path(top_k: int) -> str:
    return f"/v1/models/{MODEL}:explain?top_k={top_k}"


def http_post(port: int, path: str, body: dict[str, Any]) -> bytes:
    """A pre-encoded ``POST`` of ``body`` as JSON."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


@dataclass(frozen=True)
class Verb:
    name: str
    requests: list[bytes]


async def check_agreement(server: ChildServer, predict: Verb, explain: Verb, count: int) -> None:
    """The two verbs score the first ``count`` transactions alike; each margin gives its score."""
    connection = await Connection.open(server.port)
    try:
        for index in range(count):
            scored = json.loads(await connection.send(predict.requests[index]))["predictions"][0]
            explained = json.loads(await connection.send(explain.requests[index]))["explanations"][0]
            if not math.isclose(scored["score"], explained["score"], rel_tol=1e-6):
                raise RuntimeError(f"predict scored {scored['score']}, explain {explained['score']}")
            total = math.fsum(item["contribution"] for item in explained["contributions"]) + explained["bias"]
            if not math.isclose(1 / (1 + math.exp(-total)), explained["score"], abs_tol=1e-5):
                raise RuntimeError(f"contributions and bias sum to {total}, not the margin of {explained['score']}")
    finally:
        await connection.close()


async def one_in_flight(
    server: ChildServer, verbs: Sequence[Verb], count: int, budget_s: float
) -> tuple[dict[str, Latency], int]:
    latencies = {verb.name: Latency() for verb in verbs}
    connection = await Connection.open(server.port)
    deadline = time.monotonic() + budget_s
    done = 0
    try:
        for index in range(count):
            if time.monotonic() > deadline:
                break
            order = verbs if index % 2 == 0 else list(reversed(verbs))
            for verb in order:
                request = verb.requests[index % len(verb.requests)]
                started = time.perf_counter()
                await connection.send(request)
                latencies[verb.name].samples.append(time.perf_counter() - started)
            done += 1
    finally:
        await connection.close()
    return latencies, done


async def under_load(server: ChildServer, verb: Verb, count: int, concurrency: int, load: Load) -> None:
    """``count`` requests of ``verb``, ``concurrency`` in flight, added to ``load``."""
    connections = [await Connection.open(server.port) for _ in range(concurrency)]
    next_index = 0

    async def worker(connection: Connection) -> None:
        nonlocal next_index
        while next_index < count:
            request = verb.requests[next_index % len(verb.requests)]
            next_index += 1
            started = time.perf_counter()
            await connection.send(request)
            load.latency.samples.append(time.perf_counter() - started)

    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(connection) for connection in connections))
    finally:
        for connection in connections:
            await connection.close()
    load.seconds += time.perf_counter() - started
    load.server_cpu_s += server.cpu_seconds() - cpu_before
    load.requests += count


async def measure(args: argparse.Namespace, server: ChildServer, rows: list[dict[str, Any]]) -> None:
    predict = Verb("predict", [http_post(server.port, PREDICT, {"instances": [row]}) for row in rows])
    explain = Verb("explain", [http_post(server.port, explain_path(args.top_k), {"instances": [row]}) for row in rows])
    verbs = (predict, explain)
    await check_agreement(server, predict, explain, 20)
    for verb in verbs:  # warm both paths
        await one_in_flight(server, [verb], 50, 30)

    before = stage_totals(server)
    started = time.perf_counter()
    latencies, done = await one_in_flight(server, verbs, args.requests, args.latency_budget_s)
    stages = stage_means(before, stage_totals(server))
    elapsed = time.perf_counter() - started
    print(f"\n1. latency, one request in flight: {done} requests per verb, alternating, {elapsed:.0f}s")
    print(f"{'verb':<10} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for verb in verbs:
        latency = latencies[verb.name]
        print(f"{verb.name:<10} {latency.p50:8.2f} {latency.p99:8.2f} {latency.mean:8.2f}")
    print(
        "server stages (means, ms): "
        + ", ".join(f"{stage} {stages[stage]:.2f}" for stage in ("lookup", "predict", "explain") if stage in stages)
    )

    loads = {verb.name: Load() for verb in verbs}
    per_round = max(1, args.load_requests // args.rounds)
    started = time.perf_counter()
    for round_index in range(args.rounds):
        order = verbs if round_index % 2 == 0 else tuple(reversed(verbs))
        for verb in order:
            await under_load(server, verb, per_round, args.concurrency, loads[verb.name])
    print(
        f"\n2. {args.concurrency} requests in flight, {per_round * args.rounds} requests per verb in "
        f"{args.rounds} interleaved rounds, {time.perf_counter() - started:.0f}s"
    )
    print(f"{'verb':<10} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'server CPU ms/req':>18}")
    for verb in verbs:
        load = loads[verb.name]
        print(
            f"{verb.name:<10} {load.rate:7.0f} {load.latency.p50:8.2f} {load.latency.p99:8.2f} "
            f"{load.cpu_ms(load.server_cpu_s):18.2f}"
        )

    p, e = latencies["predict"], latencies["explain"]
    lp, le = loads["predict"], loads["explain"]
    print("\nexplain / predict")
    ratios = [
        ("p50, one in flight", e.p50 / p.p50),
        ("p99, one in flight", e.p99 / p.p99),
        ("mean, one in flight", e.mean / p.mean),
        (f"p50, {args.concurrency} in flight", le.latency.p50 / lp.latency.p50),
        (f"p99, {args.concurrency} in flight", le.latency.p99 / lp.latency.p99),
        (f"throughput, {args.concurrency} in flight", le.rate / lp.rate),
        ("server CPU per request", le.cpu_ms(le.server_cpu_s) / lp.cpu_ms(lp.server_cpu_s)),
    ]
    if "predict" in stages and "explain" in stages:
        ratios.append(("the model call (server stage)", stages["explain"] / stages["predict"]))
    for label, value in ratios:
        print(f"  {label:<40} {value:6.2f}x")


def run_benchmark(args: argparse.Namespace) -> None:
    from tests.feature_world import simulated_feature_store

    os.environ.setdefault("BERG_USE_CASE", "fraud")  # the server's use case: the transactions and model are fraud's
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(
        f"versions: Python {platform.python_version()}, kserve {version('kserve')}, fastapi {version('fastapi')}, "
        f"xgboost {xgb.__version__}, feast {version('feast')}"
    )
    print(f"load average at start: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        root = Path(scratch)
        registry = register_model(root)
        world = simulated_feature_store(root / "world", days=args.days)
        fused, _ = berg_server("fused", world.environment, registry, root)
        stack.callback(fused.stop)
        fused.wait_ready()
        print(f"setup: {world.transactions} simulated transactions, server ready at {time.perf_counter() - began:.0f}s")
        rows = transactions(world, max(args.requests, 200))
        asyncio.run(measure(args, fused, rows))
    print(f"\nload average at end: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    print(f"total {time.perf_counter() - began:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30, help="simulated history (default 30)")
    parser.add_argument("--requests", type=int, default=500, help="one-in-flight requests per verb (default 500)")
    parser.add_argument("--latency-budget-s", type=float, default=60, help="stop phase 1 after this (default 60)")
    parser.add_argument("--load-requests", type=int, default=1000, help="requests per verb under load (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight under load (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds under load (default 5)")
    parser.add_argument("--top-k", type=int, default=3, help="reason codes per explanation (default 3)")
    args = parser.parse_args()
    if args.requests < 50 or args.load_requests < args.rounds or args.concurrency < 1 or args.top_k < 1:
        parser.error("--requests at least 50, --load-requests at least --rounds, --concurrency and --top-k at least 1")
    warnings.filterwarnings("ignore")
    run_benchmark(args)


if __name__ == "__main__":
    main()
