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
- the **physical floor** (``--serve-floor``, ``bench/serving_floor.py``): the same route doing the
  fused server's physical work with nothing around it: parse the transaction, read its rows
  straight from the online store (one ``sqlite3`` SELECT on Feast's tables, or one Redis pipeline
  of ``HMGET``s on Feast's keys), decode Feast's values, apply the views' TTL masks, compute the
  on-demand features in plain Python, one float32 row, ``inplace_predict``. Before any timing its
  scores must equal the fused server's (within 1e-6) for every transaction of the sample and for
  variants that reach the masks (rows past a view's TTL, unknown entities); else the run stops
  and prints the features that differ from Berg's assembler.

The online store is the embedded profile's SQLite, or with ``--online-store redis`` the
cluster profile (a throwaway Redis and PostgreSQL from ``tests/servers.py``, the world's rows
copied into it; the run checks the fused server reads it). The Berg servers run with the
prediction log off; ``--prediction-log`` starts a local Kafka (``LocalStack``, as
``bench/ingestion_floor.py``) and a second fused server logging to it, measured like the others.
``--protocols`` adds the fused server over V2 REST and gRPC (V1 always). ``--workers N`` sets
``BERG_SERVING_WORKERS=N`` for the fused server; a server's CPU is always summed over its
process tree (``/proc``), and the run says so when fewer than N processes did the work. The client is a
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

Under load, the fused server and the floor also run at ``--high-concurrency`` (20) requests in
flight, in the same rounds.

It prints the ratios the serving issue sets goals for (fused V1 >= 0.5x the bare
endpoint's throughput, p99 <= 2x), the same ratios for the predictor shape (the
like-for-like server overhead), standard/fused and fused/predictor (what the Feast
lookup and the on-demand features cost), and at the end, together, the fused server
against the physical floor: server CPU per request (goal <= 1.5x the floor's), throughput
at --concurrency (>= 0.5x the bare endpoint's), p50 at one in flight (<= 1.5x the
floor's), throughput at --high-concurrency over --concurrency (>= 0.9x) with p99 at both,
and with ``--prediction-log`` what the log costs per request. Each phase stops after its
request count or its time budget, whichever comes first; every path then has the same
number of samples.

    uv run --locked python bench/serving_latency.py
    uv run --locked python bench/serving_latency.py --requests 2000 --load-requests 2000 --concurrency 16
    uv run --locked python bench/serving_latency.py --online-store redis --protocols v1,v2,grpc --prediction-log
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
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import orjson
import xgboost as xgb

if TYPE_CHECKING:
    from feast import FeatureStore
    from starlette.applications import Starlette

    from berg.features.store_config import FeatureStoreConfig
    from berg.registry import ModelRegistry
    from tests.feature_world import FeatureWorld

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.feature_world

MODEL = "fraud"
PREDICT_PATH = f"/v1/models/{MODEL}:predict"
INFER_PATH = f"/v2/models/{MODEL}/infer"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROTOCOLS = ("v1", "v2", "grpc")
SCORE_TOLERANCE = 1e-6


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

    from serving_floor import run_uvicorn

    run_uvicorn(bare_app(model_file, features), port, loop)


# The benchmark.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def register_model(
    root: Path, *, seed: int = 7, signal_column: int = 0, threshold: float = 0.5, alias: str = "production"
) -> ModelRegistry:
    """A 100-tree model over every served feature (its quality is not the point here), in ``alias``.

    Args:
        seed: the synthetic training data's; another seed (and ``signal_column``) makes another model.
        signal_column: the feature that, with the last one, makes the label.
    """
    from berg.registry import Lineage, ModelRegistry, VersionMetadata
    from tests.fraud_serving import SERVABLE_FEATURES

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5000, len(SERVABLE_FEATURES))).astype(np.float32)
    y = (x[:, signal_column] + x[:, -1] + rng.normal(size=5000) > 1.5).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 5, "nthread": 1}, xgb.DMatrix(x, label=y), num_boost_round=100
    )
    folder = root / ("model" if alias == "production" else f"model-{alias}")  # the bare servers read model/
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
    metadata = VersionMetadata(lineage=lineage, params={"features": list(SERVABLE_FEATURES), "threshold": threshold})
    registry.promote(MODEL, registry.register(MODEL, folder, metadata).version, alias=alias)
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

    def tree(self) -> list[int]:
        """The server's process and its descendants, live now."""
        return process_tree(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _stat(pid: int) -> list[str]:
    """``/proc/<pid>/stat``'s fields after the command name (field 3, the state, is index 0)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(root: int) -> list[int]:
    """``root`` and its live descendants (by their parent ids in ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError):  # gone meanwhile
                continue
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending += children.get(pid, [])
    return tree


def process_cpu(root: int) -> dict[int, float]:
    """CPU seconds per process of ``root``'s tree: user + system, plus those of its children it has reaped.

    Counting the reaped children's time keeps a sum over the tree right when a worker exits between two reads.
    """
    seconds = {}
    for pid in process_tree(root):
        try:
            fields = _stat(pid)
        except OSError:
            continue
        seconds[pid] = sum(int(value) for value in fields[11:15]) / CLOCK_TICKS
    return seconds


def serving_processes(tree: list[int], supervised: bool) -> list[int]:
    """The processes of a server's tree (root first) that serve; ``supervised`` (``BERG_SERVING_WORKERS`` > 1):
    the workers alone, not their supervisor (the root) nor multiprocessing's resource tracker."""
    if not supervised:
        return tree
    return [pid for pid in tree[1:] if "resource_tracker" not in command_line(pid)]


def wait_for_workers(server: ChildServer, workers: int, timeout_s: float = 300) -> None:
    """Until the supervisor has logged each of its ``workers`` as listening."""
    deadline = time.monotonic() + timeout_s
    while len(re.findall(r"worker \d+ listening", server.log.read_text(errors="replace"))) < workers:
        if server.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{server.name}: not {workers} workers listening:\n{server.log.read_text()[-3000:]}")
        time.sleep(0.2)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def child_environment() -> dict[str, str]:
    """This process's environment for a child server, without the variable Feast sets when imported here.

    Importing Feast sets ``PROMETHEUS_MULTIPROC_DIR`` (for its Gunicorn workers) when it is unset; a child
    inheriting it keeps every metric in mmap files, which costs each increment a lock and a file write, as no
    server deployed alone pays."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
    }


def berg_server(
    shape: str,
    environment: Mapping[str, str],
    registry: ModelRegistry,
    logs: Path,
    name: str | None = None,
    **settings: str,
) -> tuple[ChildServer, int]:
    """``python -m berg_serving`` in one shape, named ``name`` (default: the shape); returns it and its gRPC port."""
    port, grpc_port = free_port(), free_port()
    env = {
        # The transactions and the model are fraud's; with more than one use case installed the server must be told.
        "BERG_USE_CASE": "fraud",
        **child_environment(),
        **environment,
        "BERG_SERVING_SHAPE": shape,
        "BERG_SERVING_REGISTRY_URI": registry.root_uri,
        "BERG_SERVING_WEB__PORT": str(port),
        "BERG_SERVING_GRPC__PORT": str(grpc_port),
        "BERG_SERVING_PREDICTION_LOG__ENABLED": "false",
        "BERG_SERVING_DRAIN_DELAY_S": "0",
        **{f"BERG_SERVING_{key}": value for key, value in settings.items()},
    }
    return ChildServer(name or shape, [sys.executable, "-m", "berg_serving"], env, logs, port), grpc_port


def bare_server(model_file: Path, features: Sequence[str], logs: Path, loop: str) -> ChildServer:
    port = free_port()
    command = [sys.executable, __file__, "--serve-bare", str(model_file), "--port", str(port), "--bare-loop", loop]
    command += ["--features", ",".join(features)]
    return ChildServer("bare", command, child_environment(), logs, port)


def floor_server(model_file: Path, store: OnlineStore, logs: Path, loop: str) -> ChildServer:
    """The physical floor (``--serve-floor``, :mod:`serving_floor`) over the same online store as the fused server."""
    from serving_floor import floor_plan

    from tests.fraud_schema import FEATURES
    from tests.fraud_serving import SERVABLE_FEATURES

    plan_file = logs / "floor-plan.json"
    plan_file.write_text(floor_plan(FEATURES, SERVABLE_FEATURES).to_json())
    port = free_port()
    command = [sys.executable, __file__, "--serve-floor", str(model_file), "--plan", str(plan_file)]
    command += ["--online", store.floor_online, "--port", str(port), "--bare-loop", loop]
    return ChildServer("floor", command, child_environment(), logs, port)


@dataclass(frozen=True)
class OnlineStore:
    """The online store every server reads: the same rows, the embedded or the cluster profile."""

    profile: str
    """``sqlite`` (embedded: SQLite registry and online store) or ``redis`` (cluster: PostgreSQL and Redis)."""
    environment: dict[str, str]
    """What a Berg server is given to open it."""
    config: FeatureStoreConfig
    """What this process opens."""
    floor_online: str
    """Where the floor reads it (:func:`serving_floor.serve_floor`'s ``online``)."""
    reads: Callable[[], int] | None = None
    """How many reads the store has served so far, when it can tell (Redis: its ``HMGET`` calls)."""


def embedded_online_store(world: FeatureWorld) -> OnlineStore:
    online = world.state_dir / "feast" / "online.db"
    return OnlineStore("sqlite", world.environment, world.store_config, f"sqlite:{online}")


def cluster_online_store(world: FeatureWorld, stack: ExitStack) -> OnlineStore:
    """A throwaway Redis and PostgreSQL (``tests/servers.py``, as ``bench/online_read.py``) holding the world's rows.

    The cluster profile's registry is applied like the embedded one's and the online rows are copied from the
    world's SQLite store, value protos and timestamps as they are (Feast's own ``online_write_batch``).
    """
    from berg.features.store import close_store, open_store, prepare_store
    from berg.features.store_config import CLUSTER_PROFILE, FeatureStoreConfig, checkout_feature_repo
    from tests import servers
    from tests.fraud_schema import FEATURES

    redis_server = stack.enter_context(servers.running_redis())
    postgres_server = stack.enter_context(servers.running_postgres())
    variables = {
        "BERG_FEAST_REGISTRY_URL": postgres_server.sqlalchemy_url(),
        "BERG_FEAST_REDIS": redis_server.connection_string(),
        "BERG_FEAST_OFFLINE_ROOT": world.offline_root,
    }
    config = FeatureStoreConfig(checkout_feature_repo(), CLUSTER_PROFILE, variables)
    store = open_store(config)
    try:
        prepare_store(store, FEATURES, world.offline_root)
        copied = copy_online_rows(world.state_dir / "feast" / "online.db", store)
    finally:
        close_store(store)
    print(f", {copied} online rows copied to Redis", end="")
    environment = {**variables, "BERG_SERVING_FEAST_PROFILE": CLUSTER_PROFILE}
    client = redis_server.client()
    stack.callback(client.close)

    def reads() -> int:
        stats = cast(dict[str, Any], client.info("commandstats"))  # a sync client's answer
        return int(stats.get("cmdstat_hmget", {}).get("calls", 0))

    where = f"redis:{redis_server.host}:{redis_server.port}"
    return OnlineStore("redis", environment, config, where, reads)


def sqlite_time(value: object) -> datetime:
    """A timestamp of Feast's SQLite online store: Unix seconds (Feast's adapter), or ISO text (older stores)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    text = value.decode() if isinstance(value, bytes) else str(value)
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def copy_online_rows(sqlite_file: Path, store: FeatureStore) -> int:
    """Every row of the stored views from Feast's SQLite online store into ``store``'s; returns the entity rows."""
    import sqlite3

    from feast.infra.key_encoding_utils import deserialize_entity_key
    from feast.protos.feast.types.Value_pb2 import Value

    from tests.fraud_schema import FEATURES

    provider = store._get_provider()
    project = store.config.project
    copied = 0
    with sqlite3.connect(sqlite_file) as conn:
        for view in FEATURES.views:
            rows: dict[bytes, tuple[dict[str, Any], datetime, datetime | None]] = {}
            query = f'SELECT entity_key, feature_name, value, event_ts, created_ts FROM "{project}_{view.name}"'
            for key, feature, value, event_ts, created_ts in conn.execute(query):
                stamp, created = sqlite_time(event_ts), sqlite_time(created_ts) if created_ts is not None else None
                rows.setdefault(key, ({}, stamp, created))[0][feature] = Value.FromString(value)
            data = [
                (deserialize_entity_key(key, 3), values, stamp, created)
                for key, (values, stamp, created) in rows.items()
            ]
            provider.online_write_batch(store.config, store.get_feature_view(view.name), data, progress=None)
            copied += len(data)
    return copied


def v2_body(transaction: dict[str, Any]) -> dict[str, Any]:
    """A transaction as V2 (Open Inference Protocol) JSON: one tensor of shape [1] per field."""
    inputs = [
        {"name": name, "shape": [1], "datatype": "FP64" if name == "amount" else "BYTES", "data": [value]}
        for name, value in transaction.items()
    ]
    return {"id": transaction["event_id"], "inputs": inputs}


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


def http_request(port: int, body: dict[str, Any], route: str = PREDICT_PATH) -> bytes:
    """A pre-encoded ``POST`` of ``body`` as JSON to ``route`` (the V1 predict route unless said)."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
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
    busy: dict[int, float] = field(default_factory=dict)
    """CPU seconds per server process."""

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


class Sender(Protocol):
    """One client of one path: sends the pre-encoded request of a transaction and waits for the answer."""

    async def send(self, index: int) -> Any: ...

    async def close(self) -> None: ...


class HttpSender:
    def __init__(self, connection: Connection, requests: Sequence[bytes]) -> None:
        self._connection = connection
        self._requests = requests

    async def send(self, index: int) -> bytes:
        return await self._connection.send(self._requests[index])

    async def close(self) -> None:
        await self._connection.close()


class GrpcSender:
    """KServe's ``InferenceGRPCClient`` (one channel each)."""

    def __init__(self, port: int, requests: Sequence[Any]) -> None:
        from kserve import InferenceGRPCClient

        self._client = InferenceGRPCClient(f"127.0.0.1:{port}", retries=0)
        self._requests = requests

    async def send(self, index: int) -> Any:
        return await self._client.infer(self._requests[index])

    async def close(self) -> None:
        await self._client.close()


@dataclass(frozen=True)
class HttpPath:
    """A path the raw client times: one server, one pre-encoded request per transaction."""

    name: str
    server: ChildServer
    requests: list[bytes]
    processes: tuple[ChildServer, ...]
    """Whose CPU time serves it."""

    async def open(self) -> Sender:
        return HttpSender(await Connection.open(self.server.port), self.requests)


@dataclass(frozen=True)
class GrpcPath:
    """A gRPC (V2) path: one ``InferRequest`` per transaction."""

    name: str
    server: ChildServer
    port: int
    requests: list[Any]
    processes: tuple[ChildServer, ...]

    async def open(self) -> Sender:
        return GrpcSender(self.port, self.requests)


ServedPath = HttpPath | GrpcPath


def ratio_line(label: str, value: float, goal: str, met: bool | None) -> str:
    verdict = "" if met is None else f"   goal {goal}: {'met' if met else 'MISSED'}"
    return f"  {label:<56} {value:6.2f}x{verdict}"


def v1_scores(body: bytes) -> list[float]:
    return [float(p["score"]) for p in json.loads(body)["predictions"]]


def v2_scores(body: bytes) -> list[float]:
    return [float(score) for score in next(o["data"] for o in json.loads(body)["outputs"] if o["name"] == "score")]


def grpc_scores(response: Any) -> list[float]:
    return [float(score) for score in next(o for o in response.outputs if o.name == "score").as_numpy().tolist()]


PREDICTION_LOG_LINE = re.compile(
    r"^berg_serving_prediction_log_(sent|dropped)_total(?:\{[^}]*\})? (\S+)$", re.MULTILINE
)


def prediction_log_counts(server: ChildServer) -> dict[str, float]:
    """Predictions the server's log sent to Kafka and dropped (its ``/metrics``)."""
    import httpx

    counts = {"sent": 0.0, "dropped": 0.0}
    for kind, value in PREDICTION_LOG_LINE.findall(httpx.get(f"{server.url}/metrics", timeout=10).text):
        counts[kind] += float(value)
    return counts


FLOOR = "floor (same work, raw store)"
FUSED_LOG = "fused V1, prediction log on"
FUSED_V2 = "fused V2 REST"
FUSED_GRPC = "fused gRPC V2"


def check_variants(rows: Sequence[dict[str, Any]], count: int = 20) -> list[dict[str, Any]]:
    """Transactions beside the sample that reach the masks: rows past a view's TTL, entities without rows.

    The first ``count`` of the sample 3 days later (past the merchant view's 2-day TTL), 8 days later (past
    the user view's 7 days too), and by a user and a merchant the store never saw.
    """
    variants = []
    for row in rows[:count]:
        event_time = datetime.fromisoformat(row["event_time"])
        for days in (3, 8):
            later = (event_time + timedelta(days=days)).isoformat()
            variants.append({**row, "event_id": str(uuid.uuid4()), "event_time": later})
        variants.append({**row, "event_id": str(uuid.uuid4()), "user_id": "bench-never-seen"})
        variants.append({**row, "event_id": str(uuid.uuid4()), "merchant_id": "bench-never-seen"})
    return variants


async def check_floor(
    rows: Sequence[dict[str, Any]],
    fused: ChildServer,
    floor: ChildServer,
    store: OnlineStore,
    berg_features: Callable[[dict[str, Any]], Mapping[str, float]],
) -> None:
    """The floor scores what the fused server scores, for every transaction of ``rows`` and :func:`check_variants`;
    else exit with the differences.

    ``berg_features``: Berg's own feature row of a transaction (its assembler, in this process), for the diff.
    """
    from serving_floor import FloorPlan, feature_rows, floor_plan, open_reader, view_states

    from tests.fraud_schema import FEATURES
    from tests.fraud_serving import SERVABLE_FEATURES

    checked = [*rows, *check_variants(rows)]
    to_fused, to_floor = await Connection.open(fused.port), await Connection.open(floor.port)
    if store.reads is not None:  # the fused server reads this store, not another one with the same rows
        before = store.reads()
        for row in rows[:10]:
            await to_fused.send(http_request(fused.port, {"instances": [row]}))
        if store.reads() - before < 10:
            raise SystemExit(f"the fused server did not read the {store.profile} online store ({fused.log})")
    mismatches = []
    for index, row in enumerate(checked):
        fused_score = v1_scores(await to_fused.send(http_request(fused.port, {"instances": [row]})))
        floor_score = v1_scores(await to_floor.send(http_request(floor.port, {"instances": [row]})))
        if len(fused_score) != 1 or len(floor_score) != 1 or abs(fused_score[0] - floor_score[0]) > SCORE_TOLERANCE:
            mismatches.append((index, fused_score, floor_score))
    await to_fused.close()
    await to_floor.close()
    plan: FloorPlan = floor_plan(FEATURES, SERVABLE_FEATURES)
    read = open_reader(store.floor_online, plan)
    if not mismatches:
        states: dict[str, dict[str, int]] = {}
        for view_state in view_states(plan, checked, read):
            for view, state in view_state.items():
                states.setdefault(view, {}).setdefault(state, 0)
                states[view][state] += 1
        coverage = "; ".join(
            f"{view}: " + ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
            for view, counts in states.items()
        )
        print(
            f"floor check: the floor's scores equal the fused server's (within {SCORE_TOLERANCE}) for all "
            f"{len(rows)} transactions of the sample and {len(checked) - len(rows)} variants ({coverage})"
        )
        return
    lines = [f"the floor and the fused server disagree on {len(mismatches)} of {len(checked)} transactions:"]
    for index, fused_score, floor_score in mismatches[:5]:
        row = checked[index]
        lines.append(
            f"  transaction {index} (user {row['user_id']}, merchant {row['merchant_id']}, {row['event_time']}): "
            f"fused {fused_score}, floor {floor_score}"
        )
        floor_row = dict(zip(plan.model_features, feature_rows(plan, [row], read)[0].tolist(), strict=True))
        berg_row = berg_features(row)
        for name in plan.model_features:
            ours, theirs = floor_row[name], float(np.float32(berg_row[name]))
            if not (ours == theirs or (np.isnan(ours) and np.isnan(theirs))):
                lines.append(f"    {name}: floor {ours!r}, Berg's assembler {theirs!r}")
    raise SystemExit("\n".join(lines))


async def measure(
    args: argparse.Namespace, world: FeatureWorld, registry: ModelRegistry, servers: Servers, store: OnlineStore
) -> None:
    from kserve import InferInput, InferRequest
    from serving_floor import entity_key, floor_plan, open_reader

    from berg.features.store import open_store
    from berg_fraud.contracts import TransactionV1
    from berg_fraud.features import transaction_context
    from berg_fraud.rules import FraudRules
    from berg_serving.champion import load_champion
    from berg_serving.online import FeastOnlineFeatures
    from berg_serving.protocol import feature_request_v1
    from berg_serving.scoring_request import ScoringContract
    from tests.fraud_schema import FEATURES, REQUEST_AMOUNT, REQUEST_EVENT_UNIX, USER_AS_OF
    from tests.fraud_serving import ASSEMBLER, SERVABLE_FEATURES

    count = max(args.requests, args.load_requests // args.rounds)
    rows = transactions(world, count)
    champion = load_champion(registry, MODEL, "v0001")
    online = FeastOnlineFeatures(open_store(store.config), ASSEMBLER.online_reads, threads=0)

    # What the transformer would send the predictor for each transaction, computed here once.
    feature_bodies = []
    for row in rows:
        transaction = [TransactionV1.model_validate(row)]
        frame = ASSEMBLER.assemble(transaction, online.fetch(ASSEMBLER.entity_rows(transaction)))
        feature_bodies.append(feature_request_v1(frame.columns))
    transaction_bodies = [{"instances": [row]} for row in rows]

    def berg_features(row: dict[str, Any]) -> dict[str, float]:
        transaction = [TransactionV1.model_validate(row)]
        frame = ASSEMBLER.assemble(transaction, online.fetch(ASSEMBLER.entity_rows(transaction)))
        return {name: float(column[0]) for name, column in frame.columns.items()}

    bare, predictor, fused, transformer = servers.bare, servers.predictor, servers.fused, servers.transformer
    floor = servers.floor
    http_paths = [
        HttpPath("bare endpoint, transaction", bare, [http_request(bare.port, b) for b in transaction_bodies], (bare,)),
        HttpPath("bare endpoint, features", bare, [http_request(bare.port, b) for b in feature_bodies], (bare,)),
        HttpPath(FLOOR, floor, [http_request(floor.port, b) for b in transaction_bodies], (floor,)),
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
    if servers.fused_log is not None:
        logged = servers.fused_log
        http_paths.append(
            HttpPath(FUSED_LOG, logged, [http_request(logged.port, b) for b in transaction_bodies], (logged,))
        )
    if "v2" in args.protocols:
        http_paths.append(
            HttpPath(FUSED_V2, fused, [http_request(fused.port, v2_body(row), INFER_PATH) for row in rows], (fused,))
        )

    def grpc_request(row: dict[str, Any]) -> Any:
        inputs = []
        for name, value in row.items():
            datatype = "FP64" if name == "amount" else "BYTES"
            tensor = InferInput(name, [1], datatype)
            data = np.array([value]) if name == "amount" else np.array([value.encode()], dtype=np.object_)
            tensor.set_data_from_numpy(data, binary_data=True)
            inputs.append(tensor)
        return InferRequest(MODEL, inputs, request_id=row["event_id"])

    served: list[ServedPath] = list(http_paths)
    if "grpc" in args.protocols:
        served.append(GrpcPath(FUSED_GRPC, fused, servers.fused_grpc_port, [grpc_request(r) for r in rows], (fused,)))
    paths = {path.name: path for path in served}
    bare_t, bare_f = "bare endpoint, transaction", "bare endpoint, features"
    pred, fus, std = "predictor V1, features", "fused V1", "standard V1 (2 hops)"
    senders = {path.name: await path.open() for path in served}

    # Same answers. The floor (its raw reads, masks, on-demand features) scores what the fused server scores,
    # for every transaction of the sample; the bare endpoint on the feature body what the predictor scores; the
    # fused server (its own Feast read and on-demand features) what the predictor scores on this process's
    # features; its other protocols and the prediction-logging server what it scores over V1.
    await check_floor(rows, fused, floor, store, berg_features)
    for index in range(20):
        scores = {
            path.name: v1_scores(await senders[path.name].send(index)) for path in http_paths if path.name != FUSED_V2
        }
        if FUSED_V2 in paths:
            scores[FUSED_V2] = v2_scores(await senders[FUSED_V2].send(index))
        if FUSED_GRPC in paths:
            scores[FUSED_GRPC] = grpc_scores(await senders[FUSED_GRPC].send(index))
        expected = scores[pred]
        for name in scores.keys() - {pred, bare_t}:
            if not np.allclose(scores[name], expected, rtol=1e-6, atol=1e-7):
                raise AssertionError(f"{name} scored {scores[name]}, the predictor {expected} (row {index})")
    for index in range(20, 100):  # warm-up
        for path in served:
            await senders[path.name].send(index % len(rows))

    # 1. One request in flight, every path in turn per transaction.
    async def timed(name: str, index: int) -> float:
        started = time.perf_counter()
        await senders[name].send(index)
        return time.perf_counter() - started

    stage_names = ("validate", "feast", "assemble", "on-demand", "predict", "total", "floor parse", "floor read")
    stages = {name: Latency() for name in stage_names}
    stages_cpu = {name: Latency() for name in stage_names}  # CPU time of this thread: a busy machine inflates it less
    contract, rules = ScoringContract(TransactionV1), FraudRules().value_rules("transactions")
    encoded_bodies = [orjson.dumps(body) for body in transaction_bodies]
    plan = floor_plan(FEATURES, SERVABLE_FEATURES)
    floor_read = open_reader(store.floor_online, plan)

    async def in_process(index: int) -> float:
        """The scoring path's stages in this process, no server around them; then the floor's parse and read of
        the same request, outside the total."""
        clock = [(time.perf_counter(), time.thread_time())]
        transaction = contract.parse_v1(
            orjson.loads(encoded_bodies[index]), max_batch=1, rules=rules, now=datetime.now(UTC)
        )
        clock.append((time.perf_counter(), time.thread_time()))
        values = online.fetch(ASSEMBLER.entity_rows(transaction))
        clock.append((time.perf_counter(), time.thread_time()))
        frame = ASSEMBLER.assemble(transaction, values)
        clock.append((time.perf_counter(), time.thread_time()))
        champion.predict(frame.matrix(champion.features))
        clock.append((time.perf_counter(), time.thread_time()))
        # The part of assemble_features that is the on-demand transaction_context (Feast's python mode), timed
        # again alone on the same values, outside the total.
        last_unix = values[USER_AS_OF][0]
        transaction_context(
            {
                REQUEST_AMOUNT: [transaction[0].amount],
                REQUEST_EVENT_UNIX: [transaction[0].event_time.timestamp()],
                "amount_mean_7d": [float(frame.columns["amount_mean_7d"][0])],
                USER_AS_OF: [None if last_unix is None else float(last_unix)],  # type: ignore[arg-type]  # a number
            }
        )
        clock.append((time.perf_counter(), time.thread_time()))
        instances = orjson.loads(encoded_bodies[index])["instances"]
        clock.append((time.perf_counter(), time.thread_time()))
        floor_read([[entity_key(view.join_key, t[view.join_key]) for t in instances] for view in plan.views])
        clock.append((time.perf_counter(), time.thread_time()))
        spans = {"validate": (0, 1), "feast": (1, 2), "assemble": (2, 3), "predict": (3, 4), "on-demand": (4, 5)}
        spans.update({"total": (0, 4), "floor parse": (5, 6), "floor read": (6, 7)})
        for name, (begin, end) in spans.items():
            stages[name].samples.append(clock[end][0] - clock[begin][0])
            stages_cpu[name].samples.append(clock[end][1] - clock[begin][1])
        return clock[4][0] - clock[0][0]

    timers: dict[str, Callable[[int], Awaitable[float]]] = {
        path.name: functools.partial(timed, path.name) for path in served
    }
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
    for name in (fus, std, pred):
        server = paths[name].server
        before = stage_totals(server)
        for index in range(min(done, 200)):
            await senders[name].send(index)
        server_stages[server.name] = stage_means(before, stage_totals(server))
    for sender in senders.values():
        await sender.close()
    await online.close()

    cut = "" if done == args.requests else f" (stopped by --latency-budget-s at {done} of {args.requests})"
    print(f"\n1. latency, one request in flight: {done} requests per path{cut}, interleaved, {latency_s:.0f}s")
    print(f"{'path':<30} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, values in latency.items():
        print(f"{name:<30} {values.p50:8.2f} {values.p99:8.2f} {values.mean:8.2f}")

    # 2. Throughput: the same number of requests in flight for every path, in interleaved rounds; then the fused
    # server and the floor at --high-concurrency.
    per_round = args.load_requests // args.rounds
    n, high = args.concurrency, args.high_concurrency
    load = {path.name: Load() for path in served}
    load_high = {name: Load() for name in (fus, FLOOR)}
    log_before = prediction_log_counts(servers.fused_log) if servers.fused_log is not None else None

    async def segment(path: ServedPath, result: Load, in_flight: int) -> None:
        pool = [await path.open() for _ in range(in_flight)]
        queue = iter(range(per_round))
        samples: list[float] = []

        async def worker(sender: Sender) -> None:
            for index in queue:
                sent = time.perf_counter()
                await sender.send(index)
                samples.append(time.perf_counter() - sent)

        cpu_before = [process_cpu(server.process.pid) for server in path.processes]
        client_before = client_cpu()
        started = time.perf_counter()
        await asyncio.gather(*(worker(sender) for sender in pool))
        result.seconds += time.perf_counter() - started
        result.client_cpu_s += client_cpu() - client_before
        for server, before in zip(path.processes, cpu_before, strict=True):
            for pid, seconds in process_cpu(server.process.pid).items():
                result.busy[pid] = result.busy.get(pid, 0.0) + seconds - before.get(pid, 0.0)
        result.server_cpu_s = sum(result.busy.values())
        result.requests += per_round
        result.latency.samples.extend(samples)
        for sender in pool:
            await sender.close()

    deadline = time.monotonic() + args.load_budget_s
    started = time.perf_counter()
    rounds = 0
    for round_index in range(args.rounds):
        if time.monotonic() > deadline:
            break
        shift = round_index % len(served)
        for path in served[shift:] + served[:shift]:
            await segment(path, load[path.name], n)
        for name in (fus, FLOOR)[:: 1 if round_index % 2 == 0 else -1]:
            await segment(paths[name], load_high[name], high)
        rounds += 1
    load_s = time.perf_counter() - started

    cut = "" if rounds == args.rounds else f" (stopped by --load-budget-s after {rounds} of {args.rounds} rounds)"
    print(
        f"\n2. throughput, {n} requests in flight ({high} for the last two rows), {per_round * rounds} requests per "
        f"path in {rounds} interleaved rounds{cut}, {load_s:.0f}s"
    )
    print(f"{'path':<42} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'server CPU ms/req':>18} {'client CPU ms/req':>18}")
    rows_out = list(load.items())
    rows_out += [(f"{name}, {high} in flight", result) for name, result in load_high.items()]
    for name, result in rows_out:
        print(
            f"{name:<42} {result.rate:8.0f} {result.latency.p50:8.2f} {result.latency.p99:8.2f} "
            f"{result.cpu_ms(result.server_cpu_s):18.2f} {result.cpu_ms(result.client_cpu_s):18.2f}"
        )

    # Ratios and goals.
    one = latency

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
    for name in (FUSED_V2, FUSED_GRPC):
        if name in load:
            print(f" {name} / fused V1:")
            print(ratio_line("p50, one in flight", one[name].p50 / one[fus].p50, "", None))
            print(ratio_line(f"server CPU per request, {n} in flight", cpu(name) / cpu(fus), "", None))
            print(ratio_line(f"throughput, {n} in flight", load[name].rate / load[fus].rate, "", None))

    # Where the time goes.
    print("\nwhere the time goes (means in ms, one request in flight unless said)")
    print(" in process, no server (wall / CPU of the thread):")
    for name, what in (
        ("validate", "the V1 body parsed, the contract and value rules (ScoringContract.parse_v1)"),
        ("feast", "Feast's online store class (FeastOnlineFeatures.fetch: online_read), both views"),
        ("assemble", "assemble_features"),
        ("on-demand", "  of which transaction_context (python)"),
        ("predict", "float32 matrix + inplace_predict"),
        ("total", ""),
        ("floor parse", "the floor's parse of the same body (orjson, no contract)"),
        ("floor read", "the floor's raw read of the same rows (keys, one query, Value protos)"),
    ):
        print(f"   {name:<10} {stages[name].mean:5.2f} / {stages_cpu[name].mean:5.2f}  {what}")
    print(" Berg servers' own stages (their /metrics, V1 requests, one in flight; lookup: validation, Feast and")
    print(" on-demand; predict: the model or the hop to the predictor; total: KServe's model call):")
    for name, means in server_stages.items():
        print(f"   {name:<12} " + ", ".join(f"{stage} {value:.2f}" for stage, value in sorted(means.items())))
    print(
        f" at the client: fused V1 {one[fus].mean:.2f}, floor {one[FLOOR].mean:.2f}, predictor V1 "
        f"{one[pred].mean:.2f}, bare endpoint {one[bare_t].mean:.2f} (transaction) / {one[bare_f].mean:.2f} (features)"
    )
    print(
        f" server CPU per request, {n} in flight: fused {cpu(fus):.2f}, floor {cpu(FLOOR):.2f}, predictor "
        f"{cpu(pred):.2f}, bare {cpu(bare_t):.2f} / {cpu(bare_f):.2f}, standard {cpu(std):.2f} "
        "(transformer + predictor)"
    )

    # The serving issue's goals against the physical floor, together.
    fused_busy = sorted(load[fus].busy.values(), reverse=True)
    working = sum(1 for seconds in fused_busy if seconds >= 0.05 * sum(fused_busy))
    print(f"\nthe fused server against the physical floor ({store.profile} online store)")
    if args.workers is not None:
        print(
            f"  BERG_SERVING_WORKERS={args.workers}: {servers.fused_processes} server process(es) at start, "
            f"{working} of them doing >= 5% of the work under load"
        )
        if working < args.workers:
            print(
                f"  NOTE: the fused server does not run {args.workers} workers (it ignores BERG_SERVING_WORKERS or "
                "does not spread the load): the figures below are of fewer processes than asked"
            )
    value = cpu(fus) / cpu(FLOOR)
    print(ratio_line(f"server CPU per request, fused V1 / floor, {n} in flight", value, "<= 1.5x", value <= 1.5))
    contract_extra = stages_cpu["validate"].mean - stages_cpu["floor parse"].mean
    feast_extra = stages_cpu["feast"].mean - stages_cpu["floor read"].mean
    print(
        f"  of which what the issue keeps costs beyond the floor's parse and read (in process, thread CPU): the "
        f"contract and value rules {contract_extra:.2f} ms, Feast's store class {feast_extra:.2f} ms; the 1.5x "
        f"goal leaves {0.5 * cpu(FLOOR):.2f} ms above the floor for them and everything else"
    )
    value = load[fus].rate / load[bare_t].rate
    print(ratio_line(f"throughput, fused V1 / bare endpoint, {n} in flight", value, ">= 0.5x", value >= 0.5))
    value = one[fus].p50 / one[FLOOR].p50
    print(ratio_line("p50, fused V1 / floor, one in flight", value, "<= 1.5x", value <= 1.5))
    value = load_high[fus].rate / load[fus].rate
    print(ratio_line(f"throughput, fused V1, {high} / {n} in flight", value, ">= 0.9x (within 10%)", value >= 0.9))
    print(
        f"  p99 fused V1: {load[fus].latency.p99:.2f} ms at {n} in flight, {load_high[fus].latency.p99:.2f} ms at "
        f"{high}; floor: {load[FLOOR].latency.p99:.2f} / {load_high[FLOOR].latency.p99:.2f} ms"
    )
    print(
        f"  (fused V1 {cpu(fus):.2f} ms CPU/request, floor {cpu(FLOOR):.2f}; p50 one in flight fused "
        f"{one[fus].p50:.2f} ms, floor {one[FLOOR].p50:.2f})"
    )
    if servers.fused_log is not None and log_before is not None:
        log_after = prediction_log_counts(servers.fused_log)
        sent, dropped = (log_after[k] - log_before[k] for k in ("sent", "dropped"))
        print(
            f"  prediction log: {cpu(FUSED_LOG):.2f} ms CPU/request on, {cpu(fus):.2f} off "
            f"(+{cpu(FUSED_LOG) - cpu(fus):.2f} ms, {cpu(FUSED_LOG) / cpu(fus):.2f}x); throughput "
            f"{load[FUSED_LOG].rate / load[fus].rate:.2f}x; under load Kafka acknowledged {sent:.0f} and the log "
            f"dropped {dropped:.0f} of {load[FUSED_LOG].requests} predictions"
        )


@dataclass(frozen=True)
class Servers:
    bare: ChildServer
    predictor: ChildServer
    fused: ChildServer
    fused_grpc_port: int
    transformer: ChildServer
    floor: ChildServer
    fused_log: ChildServer | None
    """The fused server with its prediction log on (``--prediction-log``)."""
    fused_processes: int
    """Processes of the fused server's tree once ready."""


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
        store = embedded_online_store(world) if args.online_store == "sqlite" else cluster_online_store(world, stack)
        fused_environment = {**store.environment}
        if args.workers is not None:
            fused_environment["BERG_SERVING_WORKERS"] = str(args.workers)
        fused, fused_grpc_port = berg_server("fused", fused_environment, registry, root)
        stack.callback(fused.stop)
        transformer, _ = berg_server(
            "transformer",
            store.environment,
            registry,
            root,
            PREDICTOR__HOST=f"127.0.0.1:{predictor_grpc_port}",
            PREDICTOR__PROTOCOL="grpc-v2",
        )
        stack.callback(transformer.stop)
        floor = floor_server(root / "model" / "model.bst", store, root, loop)
        stack.callback(floor.stop)
        fused_log = None
        if args.prediction_log:
            bootstrap = kafka_stack(root / "stack", stack)
            fused_log, _ = berg_server(
                "fused",
                fused_environment,
                registry,
                root,
                name="fused-log",
                PREDICTION_LOG__ENABLED="true",
                KAFKA__BOOTSTRAP_SERVERS=bootstrap,
            )
            stack.callback(fused_log.stop)
        for server in (bare, predictor, fused, transformer, floor, *([fused_log] if fused_log else [])):
            server.wait_ready()
        if args.workers is not None and args.workers > 1:
            # Ready is the first worker's; the others may still be loading (CPU that is not serving).
            wait_for_workers(fused, args.workers)
        print(f", servers ready at {time.perf_counter() - began:.0f}s")
        tree = fused.tree()
        print(f"fused server: {len(tree)} process(es): " + "; ".join(command_line(pid)[:80] for pid in tree))
        servers = Servers(
            bare,
            predictor,
            fused,
            fused_grpc_port,
            transformer,
            floor,
            fused_log,
            fused_processes=len(serving_processes(tree, args.workers is not None and args.workers > 1)),
        )
        asyncio.run(measure(args, world, registry, servers, store))
    print(f"\nload average at end: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    print(f"total {time.perf_counter() - began:.0f}s")


def kafka_stack(state_dir: Path, stack: ExitStack) -> str:
    """A local Kafka (Berg's ``LocalStack``, no services, as ``bench/ingestion_floor.py``); its bootstrap address."""
    from benchkit import free_ports

    from berg_app.stack.local import LocalStack
    from berg_app.stack.settings import StackSettings

    os.environ.setdefault("BERG_USE_CASE", "fraud")  # the stack creates the use case's topics
    local = LocalStack(StackSettings(state_dir=state_dir, ports=free_ports(), services=[], topic_partitions=1))
    stack.callback(local.down)
    local.up()
    return local.settings.kafka_bootstrap


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
    parser.add_argument(
        "--high-concurrency",
        type=int,
        default=20,
        help="requests in flight for the fused server and the floor's second load (default 20)",
    )
    parser.add_argument(
        "--online-store",
        choices=("sqlite", "redis"),
        default="sqlite",
        help="sqlite: the embedded profile; redis: the cluster profile on a throwaway Redis and PostgreSQL",
    )
    parser.add_argument(
        "--protocols",
        default="v1,grpc",
        help="the fused server's protocols to measure, of v1 (always), v2 (REST) and grpc (default v1,grpc)",
    )
    parser.add_argument(
        "--prediction-log",
        action="store_true",
        help="also a fused server with its prediction log on, to a local Kafka: its CPU per request",
    )
    parser.add_argument("--workers", type=int, help="BERG_SERVING_WORKERS for the fused server (default: unset)")
    parser.add_argument("--serve-bare", type=Path, help=argparse.SUPPRESS)  # the child: this model file
    parser.add_argument("--serve-floor", type=Path, help=argparse.SUPPRESS)  # the child: this model file
    parser.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--online", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--features", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare, args.features.split(","), args.port, args.bare_loop)
        return
    if args.serve_floor is not None:
        from serving_floor import serve_floor

        serve_floor(args.serve_floor, args.plan, args.online, args.port, args.bare_loop, MODEL)
        return
    args.protocols = tuple(dict.fromkeys(p.strip() for p in args.protocols.split(",") if p.strip()))
    if "v1" not in args.protocols or set(args.protocols) - set(PROTOCOLS):
        parser.error(f"--protocols takes some of {','.join(PROTOCOLS)}, v1 among them")
    if args.requests < 100 or args.load_requests < args.rounds or min(args.concurrency, args.high_concurrency) < 1:
        parser.error("--requests must be at least 100, --load-requests at least --rounds, the concurrencies at least 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    warnings.filterwarnings("ignore")
    run_benchmark(args)


if __name__ == "__main__":
    main()
