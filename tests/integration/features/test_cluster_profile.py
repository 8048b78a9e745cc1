"""The cluster profile (``feature_repo/cluster/feature_store.yaml``) on real PostgreSQL and Redis servers.

The registry lives in PostgreSQL, online values in Redis, offline rows in Berg's
append-only parquet folders. Each test reads the servers directly too (the
registry tables, the Redis hashes), so a pass means the data is where the
profile says, not only that Feast reads back what it wrote.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mmh3
import pandas as pd
import pyarrow.dataset as ds
import pytest
import redis
from feast import FeatureStore
from feast.data_source import PushMode
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import CollectorRegistry

from berg.features.parquet_parts import SCHEMA_PART
from berg.features.store import open_store, prepare_store
from berg.features.store_config import CLUSTER_PROFILE, OFFLINE_ROOT_VARIABLE, FeatureStoreConfig, checkout_feature_repo
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.records import RawRecord
from berg_features.aggregates import HOUR, WindowAggregator
from berg_features.handler import FeaturesHandler
from berg_features.metrics import FeaturesMetrics
from berg_features.streamed_view import FeastTarget
from berg_fraud.contracts import TransactionV1
from tests.fraud_schema import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    FEATURE_SERVICE,
    FEATURES,
    MERCHANT_VIEW,
    ON_DEMAND_VIEW,
    USER_AGGREGATES,
    USER_FEATURES,
    USER_KEY,
    USER_PUSH_SOURCE,
    USER_STREAMING_VIEW,
    USER_VIEW,
    fraud_label_store,
    fraud_sources,
)
from tests.helpers import make_transactions
from tests.servers import PostgresServer, RedisServer

pytestmark = [
    pytest.mark.integration,
    # Feast warns on every apply that on-demand views are experimental; Dask (historical
    # retrieval) warns about a pandas downcasting change. Neither is ours to fix.
    pytest.mark.filterwarnings("ignore:On demand feature view is an experimental feature:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Downcasting object dtype arrays:FutureWarning"),
]

REGISTRY_URL_ENV = "BERG_FEAST_REGISTRY_URL"
REDIS_ENV = "BERG_FEAST_REDIS"
PROJECT = "berg"
USER_REFS = [f"{USER_VIEW}:{spec.name}" for spec in USER_FEATURES]
FEAST_CLI_TIMEOUT_S = 180


@dataclass(frozen=True)
class ClusterStore:
    """A feature store on the cluster profile, with direct clients to its servers."""

    env: dict[str, str]
    store: FeatureStore
    redis: redis.Redis
    postgres: PostgresServer
    database: str
    offline_root: Path

    @contextmanager
    def reopen(self) -> Iterator[FeatureStore]:
        """A second, independent :class:`FeatureStore` on the same servers."""
        with opened(self.env) as store:
            yield store


@contextmanager
def opened(env: dict[str, str]) -> Iterator[FeatureStore]:
    """A store on the cluster profile, its registry's connection pool closed at the end.

    Feast has no close for the SQL registry: its SQLAlchemy engine would leave
    PostgreSQL connections to the garbage collector (a ResourceWarning each).
    """
    store = open_store(FeatureStoreConfig(checkout_feature_repo(), CLUSTER_PROFILE, env))
    try:
        yield store
    finally:
        store.registry.write_engine.dispose()
        store.registry.read_engine.dispose()


def profile_env(registry_url: str, redis_address: str, offline_root: Path) -> dict[str, str]:
    """The variables ``feature_repo/cluster/feature_store.yaml`` (and ``berg_repo.py``) read."""
    return {REGISTRY_URL_ENV: registry_url, REDIS_ENV: redis_address, OFFLINE_ROOT_VARIABLE: str(offline_root)}


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer, postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterStore]:
    """The profile on a registry database and a Redis database of this module's own, set up by ``prepare_store``."""
    database, redis_db = postgres_server.create_database(), redis_server.allocate_db()
    offline_root = tmp_path_factory.mktemp("offline")
    env = profile_env(postgres_server.sqlalchemy_url(database), redis_server.connection_string(redis_db), offline_root)
    with opened(env) as store, redis_server.client(redis_db) as client:
        prepare_store(store, FEATURES, str(offline_root))
        yield ClusterStore(
            env=env, store=store, redis=client, postgres=postgres_server, database=database, offline_root=offline_root
        )


def user_row(user_id: str, event: datetime, created: datetime, seed: int) -> dict[str, Any]:
    """A feature row whose every value derives from ``seed``, so a read shows which row it got."""
    row: dict[str, Any] = {USER_KEY: user_id}
    for position, spec in enumerate(USER_FEATURES):
        row[spec.name] = seed * 100 + position if spec.kind == "int" else seed + position / 8
    row[EVENT_TIMESTAMP] = pd.Timestamp(event)
    row[CREATED_TIMESTAMP] = pd.Timestamp(created)
    return row


def push(store: FeatureStore, rows: list[dict[str, Any]]) -> None:
    store.push(USER_PUSH_SOURCE, pd.DataFrame(rows), to=PushMode.ONLINE_AND_OFFLINE)


def online(store: FeatureStore, user_ids: list[str]) -> list[dict[str, Any]]:
    """One dict of feature values per user, read through Feast."""
    columns = store.get_online_features(features=USER_REFS, entity_rows=[{USER_KEY: u} for u in user_ids]).to_dict()
    return [{spec.name: columns[spec.name][i] for spec in USER_FEATURES} for i in range(len(user_ids))]


def features_of(row: dict[str, Any]) -> dict[str, Any]:
    return {spec.name: row[spec.name] for spec in USER_FEATURES}


def redis_key(user_id: str) -> bytes:
    """Feast's Redis key for a user (entity key serialization v3, then the project), written out by hand."""
    join_key, value = USER_KEY.encode(), user_id.encode()
    string_type = 2  # feast ValueType.STRING
    return (
        struct.pack("<III", 1, string_type, len(join_key))
        + join_key
        + struct.pack("<II", string_type, len(value))
        + value
        + PROJECT.encode()
    )


def redis_field(feature: str) -> bytes:
    """The hash field of a feature: murmur3 (32 bit, little endian) of ``view:feature``."""
    return struct.pack("<I", mmh3.hash(f"{USER_VIEW}:{feature}", signed=False))


def redis_event_time(client: redis.Redis, user_id: str) -> datetime:
    stamp = Timestamp()
    stamp.ParseFromString(client.hget(redis_key(user_id), f"_ts:{USER_VIEW}"))
    return stamp.ToDatetime(tzinfo=UTC)


def redis_value(client: redis.Redis, user_id: str, feature: str) -> ValueProto:
    value = ValueProto()
    value.ParseFromString(client.hget(redis_key(user_id), redis_field(feature)))
    return value


def test_prepare_store_registers_the_repo_in_postgresql(cluster: ClusterStore) -> None:
    with cluster.reopen() as other:
        assert {view.name for view in other.list_feature_views()} == {USER_VIEW, MERCHANT_VIEW}
        assert [view.name for view in other.list_on_demand_feature_views()] == [ON_DEMAND_VIEW]
        assert [service.name for service in other.list_feature_services()] == [FEATURE_SERVICE]
        assert {entity.name for entity in other.list_entities()} >= {"user", "merchant"}

    with cluster.postgres.connect(cluster.database) as conn:
        rows = conn.execute("SELECT feature_view_name FROM feature_views WHERE project_id = %s", [PROJECT]).fetchall()
        services = conn.execute("SELECT feature_service_name FROM feature_services WHERE project_id = %s", [PROJECT])
        assert {name for (name,) in rows} == {USER_VIEW, MERCHANT_VIEW}
        assert [name for (name,) in services.fetchall()] == [FEATURE_SERVICE]

    for view in (USER_VIEW, MERCHANT_VIEW):
        assert (cluster.offline_root / view / SCHEMA_PART).is_file()


def test_pushed_rows_read_back_online_from_redis(cluster: ClusterStore) -> None:
    event = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    users = [f"online-{i:03d}" for i in range(50)]
    rows = [user_row(user, event, event, seed=i + 1) for i, user in enumerate(users)]
    push(cluster.store, rows)

    assert online(cluster.store, users) == [features_of(row) for row in rows]
    # A second store instance reads the same values: they are in Redis, not in a process.
    with cluster.reopen() as other:
        assert online(other, users[:3]) == [features_of(row) for row in rows[:3]]
    assert online(cluster.store, ["online-never-pushed"]) == [dict.fromkeys(features_of(rows[0]))]

    for user in users:
        assert cluster.redis.exists(redis_key(user)), user
        assert redis_event_time(cluster.redis, user) == event
    assert redis_value(cluster.redis, users[7], "tx_count_24h").int64_val == rows[7]["tx_count_24h"]
    assert redis_value(cluster.redis, users[7], "amount_sum_7d").double_val == rows[7]["amount_sum_7d"]


def test_historical_features_read_the_offline_parquet(cluster: ClusterStore) -> None:
    event = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    users = [f"history-{i:02d}" for i in range(10)]
    rows = [user_row(user, event, event, seed=i + 200) for i, user in enumerate(users)]
    push(cluster.store, rows)

    parts = ds.dataset(cluster.offline_root / USER_VIEW, format="parquet").to_table(
        filter=ds.field(USER_KEY).isin(users)
    )
    assert parts.num_rows == len(users)

    # Each user just after the row (it applies) and just before it (nothing known yet).
    entity_df = pd.DataFrame(
        {
            USER_KEY: users + users,
            EVENT_TIMESTAMP: [event + timedelta(minutes=1)] * len(users) + [event - timedelta(minutes=1)] * len(users),
        }
    )
    result = cluster.store.get_historical_features(entity_df=entity_df, features=USER_REFS).to_df()
    after = result[result[EVENT_TIMESTAMP] > event].set_index(USER_KEY)
    before = result[result[EVENT_TIMESTAMP] < event].set_index(USER_KEY)
    for user, row in zip(users, rows, strict=True):
        assert after.loc[user, list(features_of(row))].to_dict() == features_of(row)
    assert before[[spec.name for spec in USER_FEATURES]].isna().all().all()


def test_an_older_row_pushed_later_does_not_replace_the_newer_online_value(cluster: ClusterStore) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    newer, older = now - timedelta(hours=1), now - timedelta(hours=2)
    push(cluster.store, [user_row("out-of-order", newer, newer, seed=2)])
    push(cluster.store, [user_row("out-of-order", older, now, seed=1)])

    # Feast's Redis store compares event times before writing and skips the older row.
    assert online(cluster.store, ["out-of-order"]) == [features_of(user_row("out-of-order", newer, newer, seed=2))]
    assert redis_event_time(cluster.redis, "out-of-order") == newer
    assert redis_value(cluster.redis, "out-of-order", "tx_count_1h").int64_val == 200

    # Offline, both rows are kept, each for its own point in time.
    entity_df = pd.DataFrame({USER_KEY: ["out-of-order"] * 2, EVENT_TIMESTAMP: [older, newer]})
    result = cluster.store.get_historical_features(entity_df=entity_df, features=[f"{USER_VIEW}:tx_count_1h"])
    assert result.to_df().sort_values(EVENT_TIMESTAMP)["tx_count_1h"].tolist() == [100, 200]


def test_redis_keeps_the_first_row_of_an_event_time_even_when_a_correction_follows(cluster: ClusterStore) -> None:
    """Feast's Redis store skips a row whose event time is not newer than the stored one, equal included.

    So a recomputed row at the same event time (a newer created timestamp: how the
    features service corrects a user's latest row after a late transaction) does not
    reach Redis, while SQLite (embedded profile) upserts it. This pins that behaviour:
    the cluster profile needs ``skip_dedup`` or another event time for corrections.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    event = now - timedelta(hours=1)
    push(cluster.store, [user_row("corrected", event, event, seed=3)])
    push(cluster.store, [user_row("corrected", event, now, seed=4)])

    assert online(cluster.store, ["corrected"]) == [features_of(user_row("corrected", event, event, seed=3))]
    assert redis_value(cluster.redis, "corrected", "tx_count_1h").int64_val == 300


def feast_cli(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    """``feast -c feature_repo -f feature_repo/cluster/feature_store.yaml <command>``, as an operator runs it."""
    repo = checkout_feature_repo()
    # The feast script of this environment: what `uv run feast` runs, without uv's sync step.
    feast = Path(sys.executable).with_name("feast")
    process = subprocess.run(
        [str(feast), "-c", str(repo), "-f", str(repo / CLUSTER_PROFILE), command],
        cwd=repo.parent,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=FEAST_CLI_TIMEOUT_S,
        check=False,
    )
    assert process.returncode == 0, f"feast {command} failed:\n{process.stdout}\n{process.stderr}"
    return process


@pytest.mark.slow
def test_feast_cli_plans_no_change_over_prepare_store_and_applies_from_scratch(
    cluster: ClusterStore, redis_server: RedisServer, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    # The CLI reads feature_repo/berg_repo.py; prepare_store registered the same objects.
    plan = feast_cli(cluster.env, "plan")
    assert "No changes to registry" in plan.stdout, plan.stdout

    fresh = profile_env(
        postgres_server.sqlalchemy_url(postgres_server.create_database()),
        redis_server.connection_string(redis_server.allocate_db()),
        tmp_path,
    )
    apply = feast_cli(fresh, "apply")
    assert "Applying changes for project berg" in apply.stdout, apply.stdout
    with opened(fresh) as applied:
        assert {view.name for view in applied.list_feature_views()} == {USER_VIEW, MERCHANT_VIEW}
        assert [service.name for service in applied.list_feature_services()] == [FEATURE_SERVICE]


def test_the_features_service_corrects_a_users_latest_row_in_redis_after_a_late_transaction(
    cluster: ClusterStore, tmp_path: Path
) -> None:
    """The handler stamps a correction one microsecond after the last online stamp, so Redis takes it; after a
    restart too, when the last stamp is a correction's: the new process reads it back from Redis."""

    def start() -> FeaturesHandler:
        handler = FeaturesHandler(
            FeastTarget(cluster.store),
            fraud_label_store(str(tmp_path / "labels")),
            [(USER_STREAMING_VIEW, WindowAggregator(USER_AGGREGATES, HOUR))],
            DeadLetterPublisher(None, "features"),
            FeaturesMetrics.register(CollectorRegistry()),
            **fraud_sources(),
        )
        handler.on_assigned([("transactions.valid", 0)])
        return handler

    handler = start()
    first, second, third = make_transactions(3, seed=4)
    now = datetime.now(UTC).replace(microsecond=0)
    on_time = first.model_copy(update={"user_id": "late-user", "event_time": now - timedelta(minutes=10)})
    late = second.model_copy(update={"user_id": "late-user", "event_time": now - timedelta(minutes=30)})
    later_still = third.model_copy(update={"user_id": "late-user", "event_time": now - timedelta(minutes=40)})

    def record(tx: TransactionV1, offset: int) -> RawRecord:
        return RawRecord("transactions.valid", 0, offset, tx.user_id.encode(), tx.model_dump_json().encode(), (), 0)

    handler([record(on_time, 0)])
    assert online(cluster.store, ["late-user"])[0]["tx_count_1h"] == 1
    handler([record(late, 1)])  # 20 minutes behind, within the hour of lateness: both rows recomputed
    assert online(cluster.store, ["late-user"])[0]["tx_count_1h"] == 2
    assert online(cluster.store, ["late-user"])[0]["amount_sum_24h"] == pytest.approx(on_time.amount + late.amount)

    restarted = start()  # restores the user from the label store; its online stamp is the correction's
    restarted([record(later_still, 2)])
    assert online(cluster.store, ["late-user"])[0]["tx_count_1h"] == 3


@pytest.mark.parametrize("threads", [0, 1], ids=["async-on-the-loop", "on-a-thread"])
def test_servings_lookup_reads_from_redis_what_feast_reads(cluster: ClusterStore, threads: int) -> None:
    """Serving's planned lookup (Redis' ``online_read_async`` on the loop, or ``online_read`` on a thread)."""
    import asyncio

    from berg_serving.features import ViewRead
    from berg_serving.online import FeastOnlineFeatures

    now = datetime.now(UTC).replace(microsecond=0)
    users = [f"serving-{index}" for index in range(3)]
    push(cluster.store, [user_row(user, now, now, seed) for seed, user in enumerate(users, start=40)])
    asked = [*users, "serving-nobody"]
    read = ViewRead(USER_VIEW, USER_KEY, tuple(spec.name for spec in USER_FEATURES))
    expected = cluster.store.get_online_features(features=USER_REFS, entity_rows=[{USER_KEY: u} for u in asked])
    expected_values = {name: expected.to_dict()[name] for name in read.features}
    assert expected_values[read.features[0]][-1] is None
    assert expected_values[read.features[0]][0] is not None

    async def lookup_twice(lookup: FeastOnlineFeatures) -> list[Any]:
        rows = [{USER_KEY: u} for u in asked]
        try:
            return [await lookup.lookup(rows), await lookup.lookup(rows)]  # the second on the same async client
        finally:
            await lookup.close()

    with cluster.reopen() as store:
        assert asyncio.run(lookup_twice(FeastOnlineFeatures(store, [read], threads))) == [expected_values] * 2
