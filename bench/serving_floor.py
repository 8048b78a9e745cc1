"""The physical floor of the fused server: the same work, done with nothing but the libraries it needs.

``bench/serving_latency.py --serve-floor`` runs :func:`serve_floor` in a child process: a
Starlette route ``POST /v1/models/<name>:predict`` on uvicorn that, for each transaction of
``{"instances": [...]}``,

1. parses the body (``orjson`` when installed, else ``json``),
2. reads the rows of every stored view of the use case's feature set straight from Feast's
   online store: embedded profile, one ``sqlite3`` ``SELECT`` over Feast's tables
   (``<project>_<view>``, one row per entity and feature) by Feast's serialized entity keys;
   cluster profile, one redis-py pipeline of ``HMGET``s of Feast's keys (serialized entity key
   + project) and hash fields (murmur3 of ``<view>:<feature>``, plus ``_ts:<view>``),
3. decodes Feast's ``Value`` protos,
4. masks a view's row unless its stamp (the view's Feast event timestamp column) is within the
   view's TTL of the event's time (``berg_serving.features._usable``),
5. computes the fraud case's on-demand ``transaction_context`` in plain Python (written out
   here: :func:`transaction_context`, the reference),
6. builds one float32 row in the model's feature order (NaN for missing, request features as
   they are) and calls ``Booster.inplace_predict`` (``nthread=1``, like the champion),

and answers ``{"predictions": [{"score": ...}]}``, all on the event loop. It validates nothing,
decides nothing, logs no prediction and keeps no metrics: what is left is the least any server
answering the same question has to do.

The child imports no Berg module: the parent derives a :class:`FloorPlan` from the use case's
:class:`~berg.features.feature_set.FeatureSet` (:func:`floor_plan`) and hands it over as JSON.
The entity key layout and the value decoding are those of ``bench/online_read.py``'s raw
readers, generalised to any string join key and any view (that script's are for the user
view only); :func:`check_entity_key` checks the layout against Feast's own serializer.
"""

from __future__ import annotations

import json
import math
import sqlite3
import struct
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xgboost as xgb

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from berg.features.feature_set import FeatureSet

__all__ = [
    "FloorPlan",
    "ViewPlan",
    "check_entity_key",
    "entity_key",
    "feature_rows",
    "floor_app",
    "floor_plan",
    "open_reader",
    "serve_floor",
    "transaction_context",
    "view_states",
]

STRING_TYPE = 2  # feast ValueType.STRING
NAN = float("nan")
ON_DEMAND = "transaction_context"
"""The one on-demand view the floor writes out (fraud's)."""

try:
    import orjson

    loads: Callable[[bytes], Any] = orjson.loads
    dumps: Callable[[Any], bytes] = orjson.dumps
    JSON_LIBRARY = f"orjson {orjson.__version__}"
except ImportError:  # pragma: no cover - orjson is in the lock today
    loads = json.loads

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    JSON_LIBRARY = "json (orjson not installed)"


@dataclass(frozen=True)
class ViewPlan:
    """One stored view: where its rows are and how a row counts."""

    name: str
    join_key: str
    """The field of the transaction keying the view's entity (``user_id``)."""
    stamp: str
    """The stored column whose time is the row's Feast event timestamp: the TTL runs from it."""
    ttl_s: float
    features: tuple[str, ...]
    """Every stored column (the as-of and stamp columns included): what Feast's lookup reads."""


@dataclass(frozen=True)
class FloorPlan:
    """What the floor reads and computes, derived from the use case's feature set."""

    project: str
    views: tuple[ViewPlan, ...]
    model_features: tuple[str, ...]
    request_features: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FloorPlan:
        data = json.loads(text)
        views = tuple(
            ViewPlan(v["name"], v["join_key"], v["stamp"], v["ttl_s"], tuple(v["features"])) for v in data["views"]
        )
        return cls(data["project"], views, tuple(data["model_features"]), tuple(data["request_features"]))


def floor_plan(features: FeatureSet, model_features: Sequence[str], project: str = "berg") -> FloorPlan:
    """The plan of ``features`` for a model reading ``model_features``.

    Raises:
        ValueError: the feature set's on-demand view is not the one the floor writes out.
    """
    on_demand = features.on_demand
    if on_demand is not None and (
        on_demand.name != ON_DEMAND
        or tuple(spec.name for spec in on_demand.features)
        != ("amount_to_user_mean_7d", "hour_of_day", "seconds_since_previous_transaction")
    ):
        raise ValueError(f"the floor writes out fraud's {ON_DEMAND} only, not {on_demand.name}")
    views = tuple(
        ViewPlan(view.name, view.entity.key, view.stamp, view.ttl.total_seconds(), tuple(s.name for s in view.features))
        for view in features.views
    )
    return FloorPlan(project, views, tuple(model_features), tuple(features.request_features))


def entity_key(join_key: str, value: str) -> bytes:
    """Feast's entity key serialization (v3) for one string join key (``bench/online_read.py``'s, any key)."""
    name, raw = join_key.encode(), value.encode()
    return struct.pack("<III", 1, STRING_TYPE, len(name)) + name + struct.pack("<II", STRING_TYPE, len(raw)) + raw


def check_entity_key(join_key: str) -> None:
    """Raise when Feast's serializer no longer writes :func:`entity_key`'s layout."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    proto = EntityKey(join_keys=[join_key], entity_values=[Value(string_val="u-1")])
    if serialize_entity_key(proto, 3) != entity_key(join_key, "u-1"):
        raise AssertionError("Feast's entity key layout changed: the floor's raw reads would find nothing")


def _decoder() -> Callable[[bytes | None], Any]:
    from feast.protos.feast.types.Value_pb2 import Value

    def python_value(raw: bytes | None) -> Any:
        """A serialized ``feast.types.Value`` as a Python value (None when absent or unset)."""
        if raw is None:
            return None
        value = Value()
        value.ParseFromString(raw)
        kind = value.WhichOneof("val")
        return None if kind is None else getattr(value, kind)

    return python_value


Rows = list[list[dict[str, Any]]]
"""Per view, per transaction: the row's decoded values by feature name (empty: no row)."""
Reader = Callable[[list[list[bytes]]], Rows]
"""Per view, per transaction: the serialized entity key -> :data:`Rows`."""


def sqlite_reader(path: Path, plan: FloorPlan) -> Reader:
    """One ``SELECT`` (a ``UNION ALL`` over the views' tables) for every view and transaction of a request."""
    conn = sqlite3.connect(path, check_same_thread=False)
    python_value = _decoder()
    queries: dict[int, str] = {}

    def query(count: int) -> str:
        if count not in queries:
            marks = ",".join("?" * count)
            queries[count] = " UNION ALL ".join(
                f'SELECT {index}, entity_key, feature_name, value FROM "{plan.project}_{view.name}" '
                f"WHERE entity_key IN ({marks})"
                for index, view in enumerate(plan.views)
            )
        return queries[count]

    def read(keys: list[list[bytes]]) -> Rows:
        count = len(keys[0])
        found: list[dict[bytes, dict[str, Any]]] = [{} for _ in plan.views]
        parameters = [key for view_keys in keys for key in view_keys]
        for view, key, feature, value in conn.execute(query(count), parameters):
            found[view].setdefault(key, {})[feature] = python_value(value)
        return [[rows.get(key, {}) for key in view_keys] for rows, view_keys in zip(found, keys, strict=True)]

    return read


def redis_reader(host: str, port: int, db: int, plan: FloorPlan) -> Reader:
    """One pipeline of ``HMGET``s (a key per view and transaction, a hash field per feature plus ``_ts:<view>``)."""
    import mmh3
    import redis

    client = redis.Redis(host=host, port=port, db=db)
    python_value = _decoder()
    project = plan.project.encode()
    fields = [
        [struct.pack("<I", mmh3.hash(f"{view.name}:{name}", signed=False)) for name in view.features]
        + [f"_ts:{view.name}".encode()]
        for view in plan.views
    ]

    def read(keys: list[list[bytes]]) -> Rows:
        with client.pipeline(transaction=False) as pipe:
            for view_fields, view_keys in zip(fields, keys, strict=True):
                for key in view_keys:
                    pipe.hmget(key + project, view_fields)  # type: ignore[arg-type]  # bytes keys, as Feast's
            replies = iter(pipe.execute())
        rows: Rows = []
        for view in plan.views:
            view_rows = []
            for _ in keys[0]:
                reply = next(replies)  # the features, then the timestamp (not decoded: the stamp column tells)
                view_rows.append({name: python_value(raw) for name, raw in zip(view.features, reply, strict=False)})
            rows.append(view_rows)
        return rows

    return read


def open_reader(online: str, plan: FloorPlan) -> Reader:
    """The raw reader of ``online``: ``sqlite:<path>`` or ``redis:<host>:<port>[:<db>]``."""
    kind, _, where = online.partition(":")
    if kind == "sqlite":
        return sqlite_reader(Path(where), plan)
    if kind == "redis":
        host, port, *db = where.split(":")
        return redis_reader(host, int(port), int(db[0]) if db else 0, plan)
    raise ValueError(f"unknown online store {online!r}")


def transaction_context(amount: float, event_unix: float, mean_7d: float, last_unix: float) -> dict[str, float]:
    """Fraud's on-demand features, written out (``berg_fraud.features.transaction_context`` in plain Python).

    ``mean_7d`` and ``last_unix`` are NaN when the user has no usable row.
    """
    return {
        "amount_to_user_mean_7d": amount / mean_7d if mean_7d > 0 else NAN,  # NaN > 0 is False
        "hour_of_day": float((event_unix // 3600) % 24),
        "seconds_since_previous_transaction": event_unix - last_unix,  # NaN when unknown
    }


def _float(value: Any) -> float:
    return NAN if value is None else float(value)


def feature_rows(plan: FloorPlan, transactions: Sequence[dict[str, Any]], read: Reader) -> np.ndarray:
    """The model's float32 input for ``transactions``, one row each, in ``plan.model_features`` order."""
    event_unix = [datetime.fromisoformat(t["event_time"]).timestamp() for t in transactions]
    rows = read([[entity_key(view.join_key, t[view.join_key]) for t in transactions] for view in plan.views])
    matrix = []
    for index, transaction in enumerate(transactions):
        values: dict[str, float] = {}
        for view, view_rows in zip(plan.views, rows, strict=True):
            row = view_rows[index]
            stamp = _float(row.get(view.stamp))
            usable = not math.isnan(stamp) and event_unix[index] - stamp <= view.ttl_s
            for name in view.features:
                values[name] = _float(row.get(name)) if usable else NAN
        values.update(
            transaction_context(
                float(transaction["amount"]),
                event_unix[index],
                values["amount_mean_7d"],
                values["last_transaction_unix"],
            )
        )
        for name in plan.request_features:
            values[name] = float(transaction[name])
        matrix.append([values[name] for name in plan.model_features])
    return np.array(matrix, dtype=np.float32)


def view_states(plan: FloorPlan, transactions: Sequence[dict[str, Any]], read: Reader) -> list[dict[str, str]]:
    """Per transaction, per view: ``fresh`` (a row within the TTL), ``stale`` (older) or ``missing`` (no row)."""
    rows = read([[entity_key(view.join_key, t[view.join_key]) for t in transactions] for view in plan.views])
    states = []
    for index, transaction in enumerate(transactions):
        event_unix = datetime.fromisoformat(transaction["event_time"]).timestamp()
        state = {}
        for view, view_rows in zip(plan.views, rows, strict=True):
            stamp = _float(view_rows[index].get(view.stamp))
            fresh = event_unix - stamp <= view.ttl_s
            state[view.name] = "missing" if math.isnan(stamp) else "fresh" if fresh else "stale"
        states.append(state)
    return states


def floor_app(model_file: Path, plan: FloorPlan, read: Reader, model: str) -> Starlette:
    """The floor's Starlette app: the predict route and ``/readyz``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    booster = xgb.Booster()
    booster.load_model(bytearray(model_file.read_bytes()))
    booster.set_param({"nthread": 1})

    async def predict(request: Request) -> Response:
        transactions = loads(await request.body())["instances"]
        scores = booster.inplace_predict(feature_rows(plan, transactions, read))
        body = dumps({"predictions": [{"score": score} for score in np.asarray(scores).tolist()]})
        return Response(body, media_type="application/json")

    async def ready(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route(f"/v1/models/{model}:predict", predict, methods=["POST"]), Route("/readyz", ready)])


def serve_floor(model_file: Path, plan_file: Path, online: str, port: int, loop: str, model: str) -> None:
    """Run the floor on ``port`` until SIGTERM. ``online``: ``sqlite:<path>`` or ``redis:<host>:<port>[:<db>]``."""

    plan = FloorPlan.from_json(plan_file.read_text())
    run_uvicorn(floor_app(model_file, plan, open_reader(online, plan), model), port, loop)


def run_uvicorn(app: Any, port: int, loop: str) -> None:
    """Serve ``app`` on loopback ``port`` until SIGTERM, configured as the bare endpoint and the floor share."""
    import uvicorn

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
