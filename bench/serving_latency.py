"""Serving latency: the fused server and KServe's standard pair against the bare scoring path, in one run.

Fills a fresh Feast store with simulated history (``tests/feature_world.py``), registers
a small XGBoost model over the served features, starts as child processes
(``python -m berg_serving``, the prediction log off: no Kafka here):

- the fused server (lookup and predict in one process),
- the standard pair: a transformer calling a predictor over gRPC (``predictor_host``),

and times, interleaved, one transaction per request by known users:

- bare: in this process, what any scorer must do with no server around it: Feast's
  online read, the on-demand features (``assemble_features``) and ``inplace_predict``;
- fused, REST V1 (``httpx``) and gRPC V2 (KServe's ``InferenceGRPCClient``);
- standard, REST V1 to the transformer.

Prints p50 and p99 of each, the ratios fused/bare (what the server costs) and
standard/fused (what the extra hop costs), then requests per second with
``--concurrency`` clients in flight for fused and standard.

    uv run python bench/serving_latency.py
    uv run python bench/serving_latency.py --requests 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.feature_world, tests.helpers

from berg.contracts import TransactionV1
from berg.features.store import feast_environment, open_store
from berg.registry import Lineage, ModelRegistry, VersionMetadata
from berg_serving.champion import load_champion
from berg_serving.features import SERVABLE_FEATURES, assemble_features, entity_rows
from berg_serving.online import FeastOnlineFeatures
from tests.feature_world import FeatureWorld, simulated_feature_store
from tests.helpers import free_port, wait_for

MODEL = "fraud"


def register_model(root: Path) -> ModelRegistry:
    """A 100-tree model over every served feature (its quality is not the point here)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5000, len(SERVABLE_FEATURES))).astype(np.float32)
    y = (x[:, 0] + x[:, -1] + rng.normal(size=5000) > 1.5).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 5, "nthread": 1}, xgb.DMatrix(x, label=y), num_boost_round=100
    )
    folder = root / "model"
    folder.mkdir(parents=True)
    (folder / "model.bst").write_bytes(bytes(booster.save_raw(raw_format="ubj")))
    registry = ModelRegistry(root / "registry")
    lineage = Lineage(
        data_start=datetime(2026, 1, 1, tzinfo=UTC),
        data_end=datetime(2026, 2, 1, tzinfo=UTC),
        feature_service="fraud_model_v1",
        pipeline_run_id="bench",
        code_version="bench",
    )
    metadata = VersionMetadata(lineage=lineage, params={"features": list(SERVABLE_FEATURES), "threshold": 0.5})
    registry.promote(MODEL, registry.register(MODEL, folder, metadata).version)
    return registry


class Server:
    """``python -m berg_serving`` in one shape, on free ports."""

    def __init__(self, shape: str, world: FeatureWorld, registry: ModelRegistry, logs: Path, **settings: str) -> None:
        self.port, self.grpc_port = free_port(), free_port()
        env = {
            **os.environ,
            **world.environment,
            "BERG_SERVING_SHAPE": shape,
            "BERG_SERVING_REGISTRY_URI": registry.root_uri,
            "BERG_SERVING_WEB__PORT": str(self.port),
            "BERG_SERVING_GRPC__PORT": str(self.grpc_port),
            "BERG_SERVING_PREDICTION_LOG__ENABLED": "false",
            "BERG_SERVING_DRAIN_DELAY_S": "0",
            **{f"BERG_SERVING_{key}": value for key, value in settings.items()},
        }
        with open(logs / f"{shape}.log", "wb") as log:  # the child holds its own copy of the descriptor
            self.process = subprocess.Popen([sys.executable, "-m", "berg_serving"], env=env, stdout=log, stderr=log)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 120, "the server to be ready")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def transactions(world: FeatureWorld, count: int) -> list[dict[str, Any]]:
    recent = world.label_store.read("transactions", start=world.end - timedelta(days=1))
    chosen = random.Random(3)
    rows = []
    for index in range(count):
        row = recent.iloc[chosen.randrange(len(recent))]
        rows.append(
            {
                "event_id": str(uuid.uuid4()),
                "event_time": (world.end + timedelta(seconds=index)).isoformat(),
                "user_id": str(row["user_id"]),
                "merchant_id": str(row["merchant_id"]),
                "amount": float(row["amount"]),
                "merchant_category": str(row["merchant_category"]),
                "channel": str(row["channel"]),
                "country": str(row["country"]),
            }
        )
    return rows


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.99 * (len(ordered) - 1))] * 1000


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def throughput(call: Callable[[int], Awaitable[Any]], requests: int, concurrency: int) -> float:
    queue = iter(range(requests))

    async def worker() -> None:
        for index in queue:
            await call(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def measure(
    args: argparse.Namespace, world: FeatureWorld, registry: ModelRegistry, fused: Server, transformer: Server
) -> None:
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    rows = transactions(world, args.requests)
    champion = load_champion(registry, MODEL, "v0001")
    online = FeastOnlineFeatures(open_store, threads=1)

    async def bare(row: dict[str, Any]) -> None:
        transaction = [TransactionV1.model_validate(row)]
        frame = assemble_features(transaction, online.fetch(entity_rows(transaction)))
        champion.predict(frame.matrix(champion.features))

    def grpc_request(row: dict[str, Any]) -> Any:
        inputs = []
        for name, value in row.items():
            datatype = "FP64" if name == "amount" else "BYTES"
            tensor = InferInput(name, [1], datatype)
            data = np.array([value]) if name == "amount" else np.array([value.encode()], dtype=np.object_)
            tensor.set_data_from_numpy(data, binary_data=True)
            inputs.append(tensor)
        return InferRequest(MODEL, inputs, request_id=row["event_id"])

    async with httpx.AsyncClient(timeout=30) as http:
        grpc = InferenceGRPCClient(f"127.0.0.1:{fused.grpc_port}", retries=0)

        async def rest(server: Server, row: dict[str, Any]) -> None:
            response = await http.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": [row]})
            response.raise_for_status()

        paths: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "bare (in process)": bare,
            "fused REST V1": lambda row: rest(fused, row),
            "fused gRPC V2": lambda row: grpc.infer(grpc_request(row)),
            "standard REST V1": lambda row: rest(transformer, row),
        }
        for row in rows[:50]:  # warm-up
            for path in paths.values():
                await path(row)
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for row in rows:
            for name, path in paths.items():
                samples[name].append(await timed(lambda path=path, row=row: path(row)))
        print(f"\none transaction per request, {len(rows)} requests per path, interleaved, one at a time")
        print(f"{'path':<20} {'p50 ms':>8} {'p99 ms':>8}")
        results = {name: percentiles(values) for name, values in samples.items()}
        for name, (p50, p99) in results.items():
            print(f"{name:<20} {p50:8.2f} {p99:8.2f}")
        bare_p50, fused_p50, standard_p50 = (
            results[k][0] for k in ("bare (in process)", "fused REST V1", "standard REST V1")
        )
        print(f"\nratio fused/bare (p50):     {fused_p50 / bare_p50:.1f}x  (+{fused_p50 - bare_p50:.2f} ms)")
        print(f"ratio standard/fused (p50): {standard_p50 / fused_p50:.2f}x  (+{standard_p50 - fused_p50:.2f} ms)")

        print(f"\nthroughput, {args.concurrency} requests in flight, {args.requests} requests")
        for name, server in (("fused REST V1", fused), ("standard REST V1", transformer)):
            rate = await throughput(lambda i, server=server: rest(server, rows[i]), args.requests, args.concurrency)
            print(f"{name:<20} {rate:8.0f} requests/s")
        await grpc.close()
    online.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30, help="simulated history")
    parser.add_argument("--requests", type=int, default=1000, help="requests per path")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"
    print(f"machine: {machine}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        root = Path(scratch)
        started = time.perf_counter()
        world = simulated_feature_store(root / "world", days=args.days)
        print(f"{world.transactions} simulated transactions in {time.perf_counter() - started:.0f}s")
        registry = register_model(root)
        stack.enter_context(feast_environment(world.environment))
        predictor = Server("predictor", world, registry, root)
        fused = Server("fused", world, registry, root)
        transformer = Server(
            "transformer",
            world,
            registry,
            root,
            PREDICTOR__HOST=f"127.0.0.1:{predictor.grpc_port}",
            PREDICTOR__PROTOCOL="grpc-v2",
        )
        for server in (predictor, fused, transformer):
            stack.callback(server.stop)
        for server in (predictor, fused, transformer):
            server.wait_ready()
        asyncio.run(measure(args, world, registry, fused, transformer))


if __name__ == "__main__":
    main()
