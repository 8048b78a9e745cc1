"""Online feature reads: Feast's ``get_online_features`` against a raw read of the same rows, in one run.

Pushes ``--users`` rows of the user view (``user_transaction_aggregates``, all its
features) to both profiles' online stores, then times, call by call and
interleaved, for 1, 10 and 100 entities per request:

- embedded profile (SQLite online store, SQLite registry):
  Feast ``get_online_features(...).to_dict()`` against one raw ``sqlite3``
  ``SELECT ... WHERE entity_key IN (...)`` on Feast's table (goal: Feast <= 10x);
- cluster profile (Redis online store, PostgreSQL registry):
  Feast against one raw redis-py pipeline of ``HMGET``s of the same keys and
  hash fields (goal: Feast <= 5x).

The raw paths do all a client must do to get the same answer: encode the entity
keys (Feast's layout, written out here), query, decode the values; their results
are checked equal to Feast's before timing. Prints p50 and p99 latency of each
path and the ratios Feast/raw. Starts its own throwaway redis-server and
PostgreSQL (``tests/servers.py``: the one launcher the tests use too, so the
root/postgres-user, process-group and readiness logic lives in one place; the
repository root goes on ``sys.path`` for it, as pytest's ``pythonpath`` does).

    uv run python bench/online_read.py
    uv run python bench/online_read.py --users 5000 --iterations 2000
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import feast
import mmh3
import pandas as pd
import redis
from feast import FeatureStore
from feast.data_source import PushMode
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from berg.features.store import open_store, prepare_store
from berg.features.store_config import CLUSTER_PROFILE, FeatureStoreConfig, checkout_feature_repo
from tests.fraud_schema import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    USER_FEATURES,
    USER_KEY,
    USER_PUSH_SOURCE,
    USER_VIEW,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT = "berg"
FEATURES = [spec.name for spec in USER_FEATURES]
REFS = [f"{USER_VIEW}:{name}" for name in FEATURES]
STRING_TYPE = 2  # feast ValueType.STRING
GOALS = {"SQLite": 10.0, "Redis": 5.0}

Row = dict[str, Any]
Read = Callable[[list[str]], list[Row]]


def servers() -> ModuleType:
    """``tests/servers.py``, the throwaway Redis/PostgreSQL launcher the tests use."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    with warnings.catch_warnings():
        # tests.helpers imports the stack (kafka-python), which warns about deprecated importlib calls.
        warnings.simplefilter("ignore", DeprecationWarning)
        from tests import servers as module

    return module


def entity_key(user_id: str) -> bytes:
    """Feast's entity key serialization (v3) for one string join key, written out."""
    join_key, value = USER_KEY.encode(), user_id.encode()
    return (
        struct.pack("<III", 1, STRING_TYPE, len(join_key))
        + join_key
        + struct.pack("<II", STRING_TYPE, len(value))
        + value
    )


def python_value(raw: bytes | None) -> Any:
    """A serialized ``feast.types.Value`` as a Python value (None when absent)."""
    if raw is None:
        return None
    value = ValueProto()
    value.ParseFromString(raw)
    kind = value.WhichOneof("val")
    return None if kind is None else getattr(value, kind)


def feast_read(store: FeatureStore) -> Read:
    def read(user_ids: list[str]) -> list[Row]:
        columns = store.get_online_features(features=REFS, entity_rows=[{USER_KEY: u} for u in user_ids]).to_dict()
        return [{name: columns[name][i] for name in FEATURES} for i in range(len(user_ids))]

    return read


def sqlite_read(path: Path) -> Read:
    """One SELECT on Feast's table (a row per entity and feature), decoded like Feast does."""
    conn = sqlite3.connect(path, check_same_thread=False)
    table = f"{PROJECT}_{USER_VIEW}"

    def read(user_ids: list[str]) -> list[Row]:
        keys = [entity_key(user) for user in user_ids]
        placeholders = ",".join("?" * len(keys))
        query = f'SELECT entity_key, feature_name, value FROM "{table}" WHERE entity_key IN ({placeholders})'
        found: dict[bytes, Row] = {}
        for key, feature, value in conn.execute(query, keys):
            found.setdefault(key, {})[feature] = python_value(value)
        return [{name: found.get(key, {}).get(name) for name in FEATURES} for key in keys]

    return read


def redis_read(client: redis.Redis) -> Read:
    """One pipeline of HMGETs, a key per entity and a hash field per feature (plus the event time, as Feast reads)."""
    fields = [struct.pack("<I", mmh3.hash(f"{USER_VIEW}:{name}", signed=False)) for name in FEATURES]
    fields.append(f"_ts:{USER_VIEW}".encode())
    project = PROJECT.encode()

    def read(user_ids: list[str]) -> list[Row]:
        with client.pipeline(transaction=False) as pipe:
            for user in user_ids:
                pipe.hmget(entity_key(user) + project, fields)
            replies = pipe.execute()
        return [{name: python_value(raw) for name, raw in zip(FEATURES, reply, strict=False)} for reply in replies]

    return read


def user_rows(count: int, rng: random.Random) -> pd.DataFrame:
    now = datetime.now(UTC)
    rows = []
    for number in range(count):
        event = now - timedelta(seconds=rng.uniform(60, 86_400))
        row: Row = {USER_KEY: f"user-{number:05d}"}
        for spec in USER_FEATURES:
            row[spec.name] = rng.randrange(1000) if spec.kind == "int" else round(rng.uniform(0, 5000), 2)
        row[EVENT_TIMESTAMP] = event
        row[CREATED_TIMESTAMP] = event
        rows.append(row)
    return pd.DataFrame(rows)


@contextmanager
def embedded_store(workdir: Path) -> Iterator[tuple[FeatureStore, Path]]:
    """The embedded profile in a fresh state directory; yields the store and its SQLite online database."""
    state = workdir / "state"
    store = open_store(FeatureStoreConfig.embedded(state))
    prepare_store(store, FEATURES, str(state / "feast" / "offline"))
    yield store, state / "feast" / "online.db"


@contextmanager
def cluster_store(workdir: Path) -> Iterator[tuple[FeatureStore, redis.Redis]]:
    """The cluster profile on throwaway PostgreSQL and Redis; yields the store and a client of its Redis."""
    launcher = servers()
    with launcher.running_redis() as redis_server, launcher.running_postgres() as postgres_server:
        offline = workdir / "offline"
        env = {
            "BERG_FEAST_REGISTRY_URL": postgres_server.sqlalchemy_url(),
            "BERG_FEAST_REDIS": redis_server.connection_string(),
            "BERG_FEAST_OFFLINE_ROOT": str(offline),
        }
        store = open_store(FeatureStoreConfig(checkout_feature_repo(), CLUSTER_PROFILE, env))
        prepare_store(store, FEATURES, str(offline))
        client = redis_server.client()
        try:
            yield store, client
        finally:
            client.close()
            store.registry.write_engine.dispose()


def percentile(samples: list[float], q: int) -> float:
    """The ``q``-th percentile (1..99)."""
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def measure(
    feast_path: Read, raw_path: Read, users: list[str], size: int, iterations: int, rng: random.Random
) -> dict[str, list[float]]:
    """Latency samples (ms) of both paths, interleaved call by call on the same random entity sets."""
    samples: dict[str, list[float]] = {"feast": [], "raw": []}
    for iteration in range(iterations + iterations // 10):
        batch = rng.sample(users, size)
        order = [("feast", feast_path), ("raw", raw_path)]
        if iteration % 2:
            order.reverse()
        for name, read in order:
            started = time.perf_counter_ns()
            read(batch)
            elapsed = (time.perf_counter_ns() - started) / 1e6
            if iteration >= iterations // 10:  # the first tenth warms up
                samples[name].append(elapsed)
    return samples


def report(
    store_name: str, feast_path: Read, raw_path: Read, users: list[str], sizes: list[int], iterations: int, seed: int
) -> list[str]:
    """Check both paths agree, time them, print a table; returns the verdict lines."""
    check = [*random.Random(seed).sample(users, max(sizes)), "user-never-pushed"]
    if feast_path(check) != raw_path(check):
        raise AssertionError(f"{store_name}: the raw read and Feast disagree")
    goal = GOALS[store_name]
    print(f"\n{store_name}: Feast get_online_features vs raw ({iterations} calls per size, {len(FEATURES)} features)")
    header = (
        f"{'entities':>8} {'Feast p50':>10} {'Feast p99':>10} {'raw p50':>9} {'raw p99':>9} "
        f"{'p50 ratio':>9} {'p99 ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for size in sizes:
        samples = measure(feast_path, raw_path, users, size, iterations, random.Random(seed + size))
        feast_p50, feast_p99 = percentile(samples["feast"], 50), percentile(samples["feast"], 99)
        raw_p50, raw_p99 = percentile(samples["raw"], 50), percentile(samples["raw"], 99)
        print(
            f"{size:>8} {feast_p50:>8.2f}ms {feast_p99:>8.2f}ms {raw_p50:>7.3f}ms {raw_p99:>7.3f}ms "
            f"{feast_p50 / raw_p50:>8.1f}x {feast_p99 / raw_p99:>8.1f}x"
        )
        ratio = feast_p50 / raw_p50
        verdict = "met" if ratio <= goal else "NOT met"
        verdicts.append(f"{store_name}, {size} entities: p50 ratio {ratio:.1f}x, goal <= {goal:.0f}x {verdict}")
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=5000, help="users pushed to each online store")
    parser.add_argument("--sizes", default="1,10,100", help="entities per request")
    parser.add_argument("--iterations", type=int, default=1000, help="timed calls per path and size")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", "On demand feature view is an experimental feature", RuntimeWarning)
    sizes = [int(size) for size in args.sizes.split(",")]
    rng = random.Random(args.seed)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(
        f"python {platform.python_version()}, feast {feast.__version__}, redis-py {redis.__version__}, "
        f"sqlite {sqlite3.sqlite_version}"
    )
    rows = user_rows(args.users, rng)
    users = rows[USER_KEY].tolist()
    assert entity_key(users[0]) == serialize_entity_key(
        EntityKeyProto(join_keys=[USER_KEY], entity_values=[ValueProto(string_val=users[0])]), 3
    ), "Feast's entity key layout changed"

    verdicts = []
    with tempfile.TemporaryDirectory(prefix="berg-bench-online-") as tmp:
        workdir = Path(tmp)
        with embedded_store(workdir) as (store, online_db):
            started = time.perf_counter()
            store.push(USER_PUSH_SOURCE, rows, to=PushMode.ONLINE)
            print(f"\nSQLite: {args.users} users pushed in {time.perf_counter() - started:.1f}s")
            verdicts += report(
                "SQLite", feast_read(store), sqlite_read(online_db), users, sizes, args.iterations, args.seed
            )
        with cluster_store(workdir) as (store, client):
            started = time.perf_counter()
            store.push(USER_PUSH_SOURCE, rows, to=PushMode.ONLINE)
            version = client.info("server")["redis_version"]
            print(f"\nRedis {version}: {args.users} users pushed in {time.perf_counter() - started:.1f}s")
            verdicts += report("Redis", feast_read(store), redis_read(client), users, sizes, args.iterations, args.seed)
    print()
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
