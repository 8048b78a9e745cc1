"""Serving: Berg's shapes against a bare Starlette endpoint over the same booster, in one run.

Fills a fresh Feast store with simulated history (``tests/feature_world.py``), registers
a small XGBoost model over the served features, and starts as child processes, each
on its own free ports:

- the **fused** server (``python -m berg_serving``, lookup and predict in one process),
- the **standard pair**: a transformer calling a predictor over gRPC (``predictor_host``),
- the **predictor** alone is the same predictor process, called directly with the
  named feature columns over V1 (``{"instances": [{"<feature>": value}]}``),
- the **bare endpoint**: a minimal Starlette app on uvicorn (this file, ``--serve-bare``)
  with one route, ``POST /v1/models/fraud:predict``, that parses the JSON body, builds a
  float32 row per instance from the instance's values under the model's feature names
  (a missing name or ``null`` is NaN) and answers ``{"predictions": [{"score": ...}]}``
  from ``Booster.inplace_predict`` (no DMatrix; same model file, ``nthread=1`` like the
  champion), predicting on the event loop. It does **not** validate against the
  transaction contract, read Feast, compute the on-demand features, decide, log
  predictions, keep metrics or pass through KServe's data plane. Sent a transaction
  (``{"instances": [<transaction>]}``) it predicts on a request-derived vector: the
  ``amount``, NaN for every other feature; sent the predictor's feature body, on the
  same features the predictor gets (the scores must match the predictor's, checked).

The Berg servers run with the prediction log off (no Kafka here). The client is a
minimal keep-alive HTTP/1.1 client on asyncio streams sending pre-encoded requests,
so that it costs little of the two cores beside the servers (gRPC: KServe's
``InferenceGRPCClient``). Then, one transaction per request by known users:

1. latency with one request in flight, every path in turn per transaction (the order
   rotating), plus the stages of the scoring path timed in this process (contract
   validation, Feast's online read, ``assemble_features`` and within it the on-demand
   ``transaction_context``, ``inplace_predict``); then 200 more V1 requests per Berg
   server for its own stage timings (its ``/metrics``);
2. throughput with ``--concurrency`` requests in flight, the same for every path, in
   ``--rounds`` interleaved rounds, with p50/p99 under that load and each server's CPU
   time per request (``/proc/<pid>/stat``).

It prints the ratios the serving issue sets goals for (fused V1 >= 0.5x the bare
endpoint's throughput, p99 <= 2x), the same ratios for the predictor shape (the
like-for-like server overhead), standard/fused and fused/predictor (what the Feast
lookup and the on-demand features cost). Each phase stops after its request count or
its time budget, whichever comes first; every path then has the same number of samples.

    uv run --locked python bench/serving_latency.py
    uv run --locked python bench/serving_latency.py --requests 2000 --load-requests 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import os
import platform
import random
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xgboost as xgb

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from berg.registry import ModelRegistry
    from tests.feature_world import FeatureWorld

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.feature_world

MODEL = "fraud"
PREDICT_PATH = f"/v1/models/{MODEL}:predict"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# The bare endpoint (the child process started with --serve-bare). It imports no Berg module.


def bare_app(model_file: Path, features: Sequence[str]) -> Starlette:
    """JSON in, ``inplace_predict`` on a float32 row per instance, scores out: nothing else."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    booster = xgb.Booster()
    booster.load_model(bytearray(model_file.read_bytes()))
    booster.set_param({"nthread": 1})
    order = tuple(features)
    nan = float("nan")

    async def predict(request: Request) -> JSONResponse:
        instances = (await request.json())["instances"]
        rows = [[nan if (value := instance.get(name)) is None else value for name in order] for instance in instances]
        scores = booster.inplace_predict(np.array(rows, dtype=np.float32))
        return JSONResponse({"predictions": [{"score": score} for score in np.asarray(scores).tolist()]})

    async def ready(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route(PREDICT_PATH, predict, methods=["POST"]), Route("/readyz", ready)])


def serve_bare(model_file: Path, features: Sequence[str], port: int, loop: str) -> None:
    import uvicorn

    app = bare_app(model_file, features)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop=loop,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=65,  # as Berg's server
    )
    uvicorn.Server(config).run()


# The benchmark.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def register_model(root: Path) -> ModelRegistry:
    """A 100-tree model over every served feature (its quality is not the point here)."""
    from berg.registry import Lineage, ModelRegistry, VersionMetadata
    from tests.fraud_serving import SERVABLE_FEATURES

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


class ChildServer:
    """A server in a child process, on free ports, its output in ``<logs>/<name>.log``."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logs: Path, port: int) -> None:
        self.name = name
        self.port = port
        with open(logs / f"{name}.log", "wb") as log:  # the child holds its own copy of the descriptor
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        self.log = logs / f"{name}.log"
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, timeout_s: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f}s")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process, all its threads (Linux ``/proc``)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def berg_server(
    shape: str, environment: Mapping[str, str], registry: ModelRegistry, logs: Path, **settings: str
) -> tuple[ChildServer, int]:
    """``python -m berg_serving`` in one shape; returns the server and its gRPC port."""
    port, grpc_port = free_port(), free_port()
    env = {
        # The transactions and the model are fraud's; with more than one use case installed the server must be told.
        "BERG_USE_CASE": "fraud",
        **os.environ,
        **environment,
        "BERG_SERVING_SHAPE": shape,
        "BERG_SERVING_REGISTRY_URI": registry.root_uri,
        "BERG_SERVING_WEB__PORT": str(port),
        "BERG_SERVING_GRPC__PORT": str(grpc_port),
        "BERG_SERVING_PREDICTION_LOG__ENABLED": "false",
        "BERG_SERVING_DRAIN_DELAY_S": "0",
        **{f"BERG_SERVING_{key}": value for key, value in settings.items()},
    }
    return ChildServer(shape, [sys.executable, "-m", "berg_serving"], env, logs, port), grpc_port


def bare_server(model_file: Path, features: Sequence[str], logs: Path, loop: str) -> ChildServer:
    port = free_port()
    command = [sys.executable, __file__, "--serve-bare", str(model_file), "--port", str(port), "--bare-loop", loop]
    command += ["--features", ",".join(features)]
    return ChildServer("bare", command, dict(os.environ), logs, port)


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


def http_request(port: int, body: dict[str, Any]) -> bytes:
    """A pre-encoded ``POST`` of ``body`` as JSON to the predict route."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {PREDICT_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class Connection:
    """One keep-alive HTTP/1.1 connection sending pre-encoded requests (the servers answer with a length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def send(self, request: bytes) -> bytes:
        """The response body; raises on a status other than 200."""
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = -1
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length < 0:
            raise RuntimeError(f"a response without Content-Length: {head!r}")
        body = await self._reader.readexactly(length)
        if head[9:12] != b"200":
            status = head.split(b"\r\n", 1)[0]
            raise RuntimeError(f"{status!r}: {body[:500]!r}")
        return body

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


def percentile(samples: Sequence[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[int(share * (len(ordered) - 1))] * 1000


@dataclass
class Latency:
    samples: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) * 1000


@dataclass
class Load:
    """One path under load, summed over the rounds."""

    requests: int = 0
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    latency: Latency = field(default_factory=Latency)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def cpu_ms(self, seconds: float) -> float:
        return seconds / self.requests * 1000


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


STAGE_LINE = re.compile(r'^berg_serving_latency_seconds_(sum|count)\{stage="(\w+)"\} (\S+)$', re.MULTILINE)


def stage_totals(server: ChildServer) -> dict[tuple[str, str], float]:
    """``(sum|count, stage)`` of the server's latency histogram (its ``/metrics``)."""
    import httpx

    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return {(kind, stage): float(value) for kind, stage, value in STAGE_LINE.findall(text)}


def stage_means(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict[str, float]:
    """Mean ms per stage between two :func:`stage_totals`."""
    means = {}
    for kind, stage in after:
        if kind == "count" and after[kind, stage] > before.get((kind, stage), 0):
            count = after[kind, stage] - before.get((kind, stage), 0)
            means[stage] = (after["sum", stage] - before.get(("sum", stage), 0)) / count * 1000
    return means


@dataclass(frozen=True)
class HttpPath:
    """A path the raw client times: one server, one pre-encoded request per transaction."""

    name: str
    server: ChildServer
    requests: list[bytes]
    processes: tuple[ChildServer, ...]
    """Whose CPU time serves it."""


def ratio_line(label: str, value: float, goal: str, met: bool | None) -> str:
    verdict = "" if met is None else f"   goal {goal}: {'met' if met else 'MISSED'}"
    return f"  {label:<44} {value:6.2f}x{verdict}"


async def measure(args: argparse.Namespace, world: FeatureWorld, registry: ModelRegistry, servers: Servers) -> None:
    import pandas as pd
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    from berg.features.store import open_store
    from berg_fraud.contracts import TransactionV1
    from berg_fraud.features import transaction_context
    from berg_serving.champion import load_champion
    from berg_serving.online import FeastOnlineFeatures
    from berg_serving.protocol import feature_request_v1
    from tests.fraud_schema import REQUEST_AMOUNT, REQUEST_EVENT_UNIX, USER_AS_OF
    from tests.fraud_serving import ASSEMBLER

    count = max(args.requests, args.load_requests // args.rounds)
    rows = transactions(world, count)
    champion = load_champion(registry, MODEL, "v0001")
    online = FeastOnlineFeatures(lambda: open_store(world.store_config), ASSEMBLER.online_refs, threads=1)

    # What the transformer would send the predictor for each transaction, computed here once.
    feature_bodies = []
    for row in rows:
        transaction = [TransactionV1.model_validate(row)]
        frame = ASSEMBLER.assemble(transaction, online.fetch(ASSEMBLER.entity_rows(transaction)))
        feature_bodies.append(feature_request_v1(frame.columns))
    transaction_bodies = [{"instances": [row]} for row in rows]

    bare, predictor, fused, transformer = servers.bare, servers.predictor, servers.fused, servers.transformer
    http_paths = [
        HttpPath("bare endpoint, transaction", bare, [http_request(bare.port, b) for b in transaction_bodies], (bare,)),
        HttpPath("bare endpoint, features", bare, [http_request(bare.port, b) for b in feature_bodies], (bare,)),
        HttpPath(
            "predictor V1, features",
            predictor,
            [http_request(predictor.port, b) for b in feature_bodies],
            (predictor,),
        ),
        HttpPath("fused V1", fused, [http_request(fused.port, b) for b in transaction_bodies], (fused,)),
        HttpPath(
            "standard V1 (2 hops)",
            transformer,
            [http_request(transformer.port, b) for b in transaction_bodies],
            (transformer, predictor),
        ),
    ]

    def grpc_request(row: dict[str, Any]) -> Any:
        inputs = []
        for name, value in row.items():
            datatype = "FP64" if name == "amount" else "BYTES"
            tensor = InferInput(name, [1], datatype)
            data = np.array([value]) if name == "amount" else np.array([value.encode()], dtype=np.object_)
            tensor.set_data_from_numpy(data, binary_data=True)
            inputs.append(tensor)
        return InferRequest(MODEL, inputs, request_id=row["event_id"])

    paths = {path.name: path for path in http_paths}
    bare_t, bare_f = "bare endpoint, transaction", "bare endpoint, features"
    pred, fus, std = "predictor V1, features", "fused V1", "standard V1 (2 hops)"
    grpc_requests = [grpc_request(row) for row in rows]
    grpc = InferenceGRPCClient(f"127.0.0.1:{servers.fused_grpc_port}", retries=0)
    connections = {path.name: await Connection.open(path.server.port) for path in http_paths}

    # Same answers: the bare endpoint on the feature body scores what the predictor scores, and the fused
    # server (its own Feast read and on-demand features) what the predictor scores on this process's features.
    for index in range(20):
        scores = {
            path.name: [
                p["score"] for p in json.loads(await connections[path.name].send(path.requests[index]))["predictions"]
            ]
            for path in http_paths
        }
        expected = scores["predictor V1, features"]
        for name in ("bare endpoint, features", "fused V1", "standard V1 (2 hops)"):
            if not np.allclose(scores[name], expected, rtol=1e-6, atol=1e-7):
                raise AssertionError(f"{name} scored {scores[name]}, the predictor {expected} (row {index})")
        await grpc.infer(grpc_requests[index])
    for index in range(20, 100):  # warm-up
        for path in http_paths:
            await connections[path.name].send(path.requests[index % len(rows)])
        await grpc.infer(grpc_requests[index % len(rows)])

    # 1. One request in flight, every path in turn per transaction.
    async def timed_http(path: HttpPath, index: int) -> float:
        started = time.perf_counter()
        await connections[path.name].send(path.requests[index])
        return time.perf_counter() - started

    async def timed_grpc(index: int) -> float:
        started = time.perf_counter()
        await grpc.infer(grpc_requests[index])
        return time.perf_counter() - started

    stage_names = ("validate", "feast", "assemble", "on-demand", "predict", "total")
    stages = {name: Latency() for name in stage_names}
    stages_cpu = {name: Latency() for name in stage_names}  # CPU time of this thread: a busy machine inflates it less

    async def in_process(index: int) -> float:
        """The scoring path's stages in this process, no server around them."""
        clock = [(time.perf_counter(), time.thread_time())]
        transaction = [TransactionV1.model_validate(rows[index])]
        clock.append((time.perf_counter(), time.thread_time()))
        values = online.fetch(ASSEMBLER.entity_rows(transaction))
        clock.append((time.perf_counter(), time.thread_time()))
        frame = ASSEMBLER.assemble(transaction, values)
        clock.append((time.perf_counter(), time.thread_time()))
        champion.predict(frame.matrix(champion.features))
        clock.append((time.perf_counter(), time.thread_time()))
        # The part of assemble_features that is the on-demand transaction_context (pandas), timed again
        # alone on the same values, outside the total.
        last_unix = values[USER_AS_OF][0]
        context = transaction_context(
            pd.DataFrame(
                {
                    REQUEST_AMOUNT: np.array([transaction[0].amount], dtype=np.float64),
                    REQUEST_EVENT_UNIX: np.array([transaction[0].event_time.timestamp()], dtype=np.float64),
                    "amount_mean_7d": frame.columns["amount_mean_7d"],
                    USER_AS_OF: np.array([np.nan if last_unix is None else last_unix], dtype=np.float64),
                }
            )
        )
        for column in context.columns:
            context[column].to_numpy(dtype=np.float64, na_value=np.nan)
        clock.append((time.perf_counter(), time.thread_time()))
        spans = {"validate": (0, 1), "feast": (1, 2), "assemble": (2, 3), "predict": (3, 4), "on-demand": (4, 5)}
        spans["total"] = (0, 4)
        for name, (begin, end) in spans.items():
            stages[name].samples.append(clock[end][0] - clock[begin][0])
            stages_cpu[name].samples.append(clock[end][1] - clock[begin][1])
        return clock[4][0] - clock[0][0]

    timers: dict[str, Callable[[int], Awaitable[float]]] = {
        path.name: functools.partial(timed_http, path) for path in http_paths
    }
    timers["fused gRPC V2"] = timed_grpc
    timers["in process (no server)"] = in_process
    latency = {name: Latency() for name in timers}
    names = list(timers)
    deadline = time.monotonic() + args.latency_budget_s
    started = time.perf_counter()
    done = 0
    for index in range(args.requests):
        if time.monotonic() > deadline:
            break
        for name in names[index % len(names) :] + names[: index % len(names)]:
            latency[name].samples.append(await timers[name](index))
        done += 1
    latency_s = time.perf_counter() - started
    # The Berg servers' own stage timings (their /metrics), V1 only, one server at a time.
    server_stages: dict[str, dict[str, float]] = {}
    for path in (paths[fus], paths[std], paths[pred]):
        before = stage_totals(path.server)
        for index in range(min(done, 200)):
            await connections[path.name].send(path.requests[index])
        server_stages[path.server.name] = stage_means(before, stage_totals(path.server))
    for connection in connections.values():
        await connection.close()
    await grpc.close()
    online.close()

    cut = "" if done == args.requests else f" (stopped by --latency-budget-s at {done} of {args.requests})"
    print(f"\n1. latency, one request in flight: {done} requests per path{cut}, interleaved, {latency_s:.0f}s")
    print(f"{'path':<28} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, values in latency.items():
        print(f"{name:<28} {values.p50:8.2f} {values.p99:8.2f} {values.mean:8.2f}")

    # 2. Throughput: the same number of requests in flight for every path, in interleaved rounds.
    per_round = args.load_requests // args.rounds
    load = {path.name: Load() for path in http_paths}

    async def segment(path: HttpPath, result: Load) -> None:
        pool = [await Connection.open(path.server.port) for _ in range(args.concurrency)]
        queue = iter(range(per_round))
        samples: list[float] = []

        async def worker(connection: Connection) -> None:
            for index in queue:
                sent = time.perf_counter()
                await connection.send(path.requests[index])
                samples.append(time.perf_counter() - sent)

        cpu_before = [server.cpu_seconds() for server in path.processes]
        client_before = client_cpu()
        started = time.perf_counter()
        await asyncio.gather(*(worker(connection) for connection in pool))
        result.seconds += time.perf_counter() - started
        result.client_cpu_s += client_cpu() - client_before
        result.server_cpu_s += sum(server.cpu_seconds() for server in path.processes) - sum(cpu_before)
        result.requests += per_round
        result.latency.samples.extend(samples)
        for connection in pool:
            await connection.close()

    deadline = time.monotonic() + args.load_budget_s
    started = time.perf_counter()
    rounds = 0
    for round_index in range(args.rounds):
        if time.monotonic() > deadline:
            break
        shift = round_index % len(http_paths)
        for path in http_paths[shift:] + http_paths[:shift]:
            await segment(path, load[path.name])
        rounds += 1
    load_s = time.perf_counter() - started

    cut = "" if rounds == args.rounds else f" (stopped by --load-budget-s after {rounds} of {args.rounds} rounds)"
    print(
        f"\n2. throughput, {args.concurrency} requests in flight, {per_round * rounds} requests per path "
        f"in {rounds} interleaved rounds{cut}, {load_s:.0f}s"
    )
    print(f"{'path':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'server CPU ms/req':>18} {'client CPU ms/req':>18}")
    for name, result in load.items():
        print(
            f"{name:<28} {result.rate:8.0f} {result.latency.p50:8.2f} {result.latency.p99:8.2f} "
            f"{result.cpu_ms(result.server_cpu_s):18.2f} {result.cpu_ms(result.client_cpu_s):18.2f}"
        )

    # Ratios and goals.
    one, n = latency, args.concurrency

    def cpu(name: str) -> float:
        return load[name].cpu_ms(load[name].server_cpu_s)

    def goals(berg: str, bare: str) -> None:
        value = load[berg].rate / load[bare].rate
        print(ratio_line(f"throughput, {n} in flight", value, ">= 0.5x", value >= 0.5))
        value = one[berg].p99 / one[bare].p99
        print(ratio_line("p99, one in flight", value, "<= 2x", value <= 2))
        value = load[berg].latency.p99 / load[bare].latency.p99
        print(ratio_line(f"p99, {n} in flight", value, "<= 2x", value <= 2))

    print("\nratios")
    print(" fused V1 / bare endpoint (transaction body; the bare endpoint reads no features):")
    goals(fus, bare_t)
    print(" predictor V1 / bare endpoint (the same feature body and predict: the server's own overhead):")
    goals(pred, bare_f)
    print(" standard V1 (transformer -> gRPC -> predictor) / fused V1:")
    print(ratio_line("p50, one in flight", one[std].p50 / one[fus].p50, "", None))
    value = one[std].p99 / one[fus].p99
    print(ratio_line("p99, one in flight", value, "fused lower", value > 1))
    value = load[std].latency.p99 / load[fus].latency.p99
    print(ratio_line(f"p99, {n} in flight", value, "fused lower", value > 1))
    print(ratio_line(f"throughput, {n} in flight", load[std].rate / load[fus].rate, "", None))
    print(" fused V1 (Feast lookup, on-demand features, predict) / predictor V1 (predict only):")
    print(ratio_line("p50, one in flight", one[fus].p50 / one[pred].p50, "", None))
    print(ratio_line("p99, one in flight", one[fus].p99 / one[pred].p99, "", None))
    print(ratio_line(f"p50, {n} in flight", load[fus].latency.p50 / load[pred].latency.p50, "", None))
    print(ratio_line(f"p99, {n} in flight", load[fus].latency.p99 / load[pred].latency.p99, "", None))
    print(ratio_line(f"throughput, {n} in flight", load[fus].rate / load[pred].rate, "", None))

    # Where the time goes.
    print("\nwhere the time goes (means in ms, one request in flight unless said)")
    print(" in process, no server (wall / CPU of the thread):")
    for name, what in (
        ("validate", "TransactionV1.model_validate"),
        ("feast", "get_online_features, both views"),
        ("assemble", "assemble_features"),
        ("on-demand", "  of which transaction_context (pandas)"),
        ("predict", "float32 matrix + inplace_predict"),
        ("total", ""),
    ):
        print(f"   {name:<10} {stages[name].mean:5.2f} / {stages_cpu[name].mean:5.2f}  {what}")
    print(" Berg servers' own stages (their /metrics, V1 requests, one in flight; lookup: validation, Feast and")
    print(" on-demand; predict: the model or the hop to the predictor; total: KServe's model call):")
    for name, means in server_stages.items():
        print(f"   {name:<12} " + ", ".join(f"{stage} {value:.2f}" for stage, value in sorted(means.items())))
    print(
        f" at the client: fused V1 {one[fus].mean:.2f}, predictor V1 {one[pred].mean:.2f}, "
        f"bare endpoint {one[bare_t].mean:.2f} (transaction) / {one[bare_f].mean:.2f} (features)"
    )
    print(
        f" server CPU per request, {n} in flight: fused {cpu(fus):.2f}, predictor {cpu(pred):.2f}, "
        f"bare {cpu(bare_t):.2f} / {cpu(bare_f):.2f}, standard {cpu(std):.2f} (transformer + predictor)"
    )


@dataclass(frozen=True)
class Servers:
    bare: ChildServer
    predictor: ChildServer
    fused: ChildServer
    fused_grpc_port: int
    transformer: ChildServer


def run_benchmark(args: argparse.Namespace) -> None:
    import starlette
    import uvicorn

    from tests.feature_world import simulated_feature_store
    from tests.fraud_serving import SERVABLE_FEATURES

    uvloop_there = importlib.util.find_spec("uvloop") is not None
    loop = {"auto": "uvloop" if uvloop_there else "asyncio"}.get(args.bare_loop, args.bare_loop)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(
        f"versions: Python {platform.python_version()}, kserve {version('kserve')}, fastapi {version('fastapi')}, "
        f"starlette {starlette.__version__}, uvicorn {uvicorn.__version__}, xgboost {xgb.__version__}, "
        f"feast {version('feast')}"
    )
    print(f"bare endpoint: Starlette on uvicorn, {loop} loop; Berg's servers: asyncio loop (both httptools)")
    print(f"load average at start: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        root = Path(scratch)
        registry = register_model(root)
        # The bare endpoint and the predictor need no features: they start while the history is simulated.
        bare = bare_server(root / "model" / "model.bst", SERVABLE_FEATURES, root, loop)
        stack.callback(bare.stop)
        predictor, predictor_grpc_port = berg_server("predictor", {}, registry, root)
        stack.callback(predictor.stop)
        world = simulated_feature_store(root / "world", days=args.days)
        print(f"setup: {world.transactions} simulated transactions at {time.perf_counter() - began:.0f}s", end="")
        fused, fused_grpc_port = berg_server("fused", world.environment, registry, root)
        stack.callback(fused.stop)
        transformer, _ = berg_server(
            "transformer",
            world.environment,
            registry,
            root,
            PREDICTOR__HOST=f"127.0.0.1:{predictor_grpc_port}",
            PREDICTOR__PROTOCOL="grpc-v2",
        )
        stack.callback(transformer.stop)
        for server in (bare, predictor, fused, transformer):
            server.wait_ready()
        print(f", servers ready at {time.perf_counter() - began:.0f}s")
        servers = Servers(bare, predictor, fused, fused_grpc_port, transformer)
        asyncio.run(measure(args, world, registry, servers))
    print(f"\nload average at end: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    print(f"total {time.perf_counter() - began:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30, help="simulated history (default 30)")
    parser.add_argument("--requests", type=int, default=800, help="one-in-flight requests per path (default 800)")
    parser.add_argument("--latency-budget-s", type=float, default=60, help="stop phase 1 after this (default 60)")
    parser.add_argument("--load-requests", type=int, default=1000, help="requests per path under load (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight under load (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds under load (default 5)")
    parser.add_argument("--load-budget-s", type=float, default=45, help="start no round after this (default 45)")
    parser.add_argument(
        "--bare-loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="the bare endpoint's event loop (default: uvicorn's choice, uvloop when installed)",
    )
    parser.add_argument("--serve-bare", type=Path, help=argparse.SUPPRESS)  # the child: this model file
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--features", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare, args.features.split(","), args.port, args.bare_loop)
        return
    if args.requests < 100 or args.load_requests < args.rounds or args.concurrency < 1:
        parser.error("--requests must be at least 100, --load-requests at least --rounds, --concurrency at least 1")
    warnings.filterwarnings("ignore")
    run_benchmark(args)


if __name__ == "__main__":
    main()
