"""Serving with a shadow challenger: the fused server with shadow scoring off and at share 1.0, in one run.

Fills a fresh Feast store with simulated history (``tests/feature_world.py``), registers two
100-tree models over the served features (``v0001`` in ``production``, ``v0002`` in ``shadow``),
starts a local Kafka (``LocalStack``) and two fused servers (``python -m berg_serving``) logging
their predictions to it, the same in every way but one:

- **off**: ``BERG_SERVING_SHADOW__ENABLED=false`` (the server as it was before shadow scoring);
- **on**: the ``shadow`` alias followed and ``BERG_ROLLOUT_SHADOW_SHARE=1.0``: every scored event is
  scored again by ``v0002`` on the serving process's shadow thread and written to ``predictions.shadow``.

Both get the same requests (one transaction each, by known users) from ``--concurrency`` clients, in
``--rounds`` interleaved rounds. Per server it prints the per-request latency p50 and p99 and the server's
CPU time per request (``/proc``, the whole process: the shadow's thread and its Kafka producer
included; each round ends once the shadow has sent every record, so its work is inside the window),
then the ratios on/off. A round of the ``on`` server checks its ``/metrics``: one shadow prediction per
request, none dropped, none failed.

    uv run --locked python bench/serving_shadow.py
    uv run --locked python bench/serving_shadow.py --load-requests 3000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from serving_latency import (
    ChildServer,
    Connection,
    berg_server,
    embedded_online_store,
    http_request,
    kafka_stack,
    percentile,
    process_cpu,
    register_model,
    transactions,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.feature_world

SHADOW_METRIC = re.compile(r"^berg_serving_shadow_(predictions|dropped|failures)_total(?:\{[^}]*\})? (\S+)$", re.M)


def shadow_counts(server: ChildServer) -> dict[str, float]:
    """The server's shadow predictions, drops and failures (each summed over its labels)."""
    counts = {"predictions": 0.0, "dropped": 0.0, "failures": 0.0}
    for kind, value in SHADOW_METRIC.findall(httpx.get(f"{server.url}/metrics", timeout=10).text):
        counts[kind] += float(value)
    return counts


@dataclass
class Measured:
    requests: int = 0
    cpu_s: float = 0.0
    samples: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return percentile(self.samples, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99)

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s / self.requests * 1000


async def load(server: ChildServer, requests: list[bytes], concurrency: int, measured: Measured) -> None:
    connections = [await Connection.open(server.port) for _ in range(concurrency)]

    async def client(connection: Connection, indexes: range) -> None:
        for index in indexes:
            began = time.perf_counter()
            await connection.send(requests[index])
            measured.samples.append(time.perf_counter() - began)

    try:
        await asyncio.gather(*(client(c, range(n, len(requests), concurrency)) for n, c in enumerate(connections)))
    finally:
        for connection in connections:
            await connection.close()
    measured.requests += len(requests)


def wait_for_shadow(server: ChildServer, expected: float, timeout_s: float = 300) -> dict[str, float]:
    """Until the shadow has sent (or dropped, or failed) one record per request so far."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = shadow_counts(server)
        if sum(counts.values()) >= expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def run_benchmark(args: argparse.Namespace) -> None:
    from tests.feature_world import simulated_feature_store

    print(f"machine: {os.cpu_count()} CPUs; load average at start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        root = Path(scratch)
        registry = register_model(root)
        # A second model (another seed, threshold 0.4) in the ``shadow`` alias.
        register_model(root, seed=11, signal_column=1, threshold=0.4, alias="shadow")
        world = simulated_feature_store(root / "world", days=args.days)
        store = embedded_online_store(world)
        bootstrap = kafka_stack(root / "stack", stack)
        common = {"PREDICTION_LOG__ENABLED": "true", "KAFKA__BOOTSTRAP_SERVERS": bootstrap}
        off, _ = berg_server(
            "fused", store.environment, registry, root, name="shadow-off", SHADOW__ENABLED="false", **common
        )
        stack.callback(off.stop)
        on, _ = berg_server(
            "fused",
            {**store.environment, "BERG_ROLLOUT_SHADOW_SHARE": "1.0"},
            registry,
            root,
            name="shadow-on",
            **common,
        )
        stack.callback(on.stop)
        for server in (off, on):
            server.wait_ready()
        print(f"setup: servers ready at {time.perf_counter() - began:.0f}s")
        bodies = [{"instances": [row]} for row in transactions(world, args.load_requests)]
        results = {"off": Measured(), "on": Measured()}
        servers = {"off": off, "on": on}
        for server in (off, on):  # warm-up: first requests, the shadow's producer connected
            asyncio.run(load(server, [http_request(server.port, b) for b in bodies[:50]], 4, Measured()))
        shadowed = 50.0
        wait_for_shadow(on, shadowed)
        per_round = len(bodies) // args.rounds
        for round_index in range(args.rounds):
            chunk = bodies[round_index * per_round : (round_index + 1) * per_round]
            order = ("off", "on") if round_index % 2 == 0 else ("on", "off")
            for name in order:
                server = servers[name]
                requests = [http_request(server.port, b) for b in chunk]
                before = sum(process_cpu(server.process.pid).values())
                asyncio.run(load(server, requests, args.concurrency, results[name]))
                if name == "on":
                    shadowed += len(chunk)
                    counts = wait_for_shadow(on, shadowed)
                    if counts["predictions"] < shadowed or counts["dropped"] or counts["failures"]:
                        print(f"  warning: shadow counts after round {round_index}: {counts} (expected {shadowed})")
                results[name].cpu_s += sum(process_cpu(server.process.pid).values()) - before
        counts = shadow_counts(on)
    print(
        f"\n{args.rounds} interleaved rounds, {per_round} requests each, {args.concurrency} in flight, one event each"
    )
    print(f"{'':>14} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11}")
    for name, measured in results.items():
        label = f"shadow {name}"
        print(f"{label:>14} {measured.p50:8.2f} {measured.p99:8.2f} {measured.cpu_ms:11.3f}")
    off_m, on_m = results["off"], results["on"]
    print(
        f"ratio on/off:  p50 {on_m.p50 / off_m.p50:.2f}x, p99 {on_m.p99 / off_m.p99:.2f}x, "
        f"CPU per request {on_m.cpu_ms / off_m.cpu_ms:.2f}x"
    )
    print(
        f"shadow (on): {counts['predictions']:.0f} records sent, {counts['dropped']:.0f} dropped, "
        f"{counts['failures']:.0f} failed, for {shadowed:.0f} requests"
    )
    print(
        f"load average at end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}; "
        f"total {time.perf_counter() - began:.0f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=10, help="simulated history (default 10)")
    parser.add_argument("--load-requests", type=int, default=2000, help="requests per server (default 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    run_benchmark(parser.parse_args())


if __name__ == "__main__":
    main()
