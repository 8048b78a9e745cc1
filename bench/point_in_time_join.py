"""Point-in-time join throughput: Feast's API on Berg's offline store against a bare pandas.merge_asof.

Writes N random user feature rows (ties in event time, corrections with later created
times) as P parquet parts of the append-only offline store of a real Feast store
(embedded profile, in a temporary state dir), draws E entity rows (users and times,
some before any data or past the TTL), and times, on the same frames:

- feast: ``store.get_historical_features(entity_df, features).to_df()`` for all the user
  view's features, as a notebook or a pipeline component calls it, answered by Berg's
  offline store (registry lookups, reading the parquet parts for the time range, the
  as-of join, the result in the caller's order);
- builder: ``berg.features.dataset.build_training_frame``, ``strictly_before=False``:
  the same Feast call plus the builder's own work (a row id, the caller's index and
  columns back, typed columns);
- merge_asof: the feature rows already in memory, sorted by event and created time,
  ``pandas.merge_asof`` by ``user_id`` with the view's TTL as tolerance, back to the
  caller's order: the least a correct point-in-time join can do in pandas;
- feast-dask (information only, ``--feast-dask``): the same call on Feast's own Dask
  offline store (same registry and parts), with how many rows it returned and how many
  values differ.

Checks that feast and builder agree with merge_asof on every value, then prints entity
rows/s of each and the ratios to merge_asof (goal >= 0.2).

    uv run python bench/point_in_time_join.py
    uv run python bench/point_in_time_join.py --feature-rows 2000000 --entity-rows 500000 --parts 50 --feast-dask
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import feast
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs
from rich.console import Console

from berg.features.dataset import build_training_frame
from berg.features.definitions import source_schema
from berg.features.parquet_parts import write_part
from berg.features.store import open_store, prepare_store
from berg.features.store_config import FeatureStoreConfig
from tests.fraud_schema import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    USER_AS_OF,
    USER_FEATURES,
    USER_KEY,
    USER_TTL,
    USER_VIEW,
)

FEATURES = [spec.name for spec in USER_FEATURES]
REFS = [f"{USER_VIEW}:{name}" for name in FEATURES]
DAYS = 60


def feature_rows(rng: np.random.Generator, count: int, users: int) -> pd.DataFrame:
    """User rows over DAYS days at second resolution; 1 in 20 is a correction (same user and time, created later)."""
    start = pd.Timestamp("2026-01-01", tz="UTC")
    seconds = rng.integers(0, DAYS * 86400, count)
    user_ids = rng.integers(0, users, count)
    corrections = np.flatnonzero(rng.random(count) < 0.05)
    corrections = corrections[corrections > 0]
    seconds[corrections] = seconds[corrections - 1]
    user_ids[corrections] = user_ids[corrections - 1]
    events = start + pd.to_timedelta(seconds, unit="s")
    created = events + pd.to_timedelta(rng.integers(0, 10**6, count), unit="ms")
    created = created.where(~np.isin(np.arange(count), corrections), created + pd.Timedelta(days=1))
    frame = pd.DataFrame({USER_KEY: np.char.add("user-", user_ids.astype(str)).astype(object)})
    for spec in USER_FEATURES:
        frame[spec.name] = rng.integers(0, 50, count) if spec.kind == "int" else rng.gamma(2.0, 40.0, count)
    frame[USER_AS_OF] = events.astype("int64") / 1e9
    frame[EVENT_TIMESTAMP] = events
    frame[CREATED_TIMESTAMP] = created
    return frame


def entity_rows(rng: np.random.Generator, count: int, users: int) -> pd.DataFrame:
    """Transactions to score: random users (some unknown), times from before the data to past it."""
    start = pd.Timestamp("2026-01-01", tz="UTC")
    seconds = rng.integers(-2 * 86400, (DAYS + 10) * 86400, count)
    return pd.DataFrame(
        {
            USER_KEY: np.char.add("user-", rng.integers(0, int(users * 1.05), count).astype(str)).astype(object),
            EVENT_TIMESTAMP: start + pd.to_timedelta(seconds, unit="s"),
            "is_fraud": (rng.random(count) < 0.02).astype(np.int8),
        }
    )


def merge_asof_baseline(rows: pd.DataFrame, entities: pd.DataFrame) -> pd.DataFrame:
    """The same join in bare pandas, on rows already in memory."""
    right = rows.sort_values([EVENT_TIMESTAMP, CREATED_TIMESTAMP], kind="stable")
    right = right[[USER_KEY, EVENT_TIMESTAMP, *FEATURES]].rename(columns={EVENT_TIMESTAMP: "__row_time"})
    left = entities.assign(__position=np.arange(len(entities))).sort_values(EVENT_TIMESTAMP, kind="stable")
    joined = pd.merge_asof(
        left,
        right,
        left_on=EVENT_TIMESTAMP,
        right_on="__row_time",
        by=USER_KEY,
        direction="backward",
        tolerance=pd.Timedelta(USER_TTL),
    )
    joined = joined.sort_values("__position").drop(columns=["__position", "__row_time"])
    joined.index = entities.index
    return joined


def timed(runs: int, work: Callable[[], pd.DataFrame]) -> tuple[float, pd.DataFrame]:
    """Median seconds of ``runs`` calls, and the last result."""
    seconds = []
    result = pd.DataFrame()
    for _ in range(runs):
        began = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--feature-rows", type=int, default=1_000_000, help="user feature rows in the offline store")
    parser.add_argument("--entity-rows", type=int, default=200_000, help="entity rows (transactions) to join")
    parser.add_argument("--users", type=int, default=20_000, help="distinct users")
    parser.add_argument("--parts", type=int, default=20, help="parquet parts the feature rows are written as")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each path (median reported)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--feast-dask", action="store_true", help="also time Feast's own Dask offline store")
    args = parser.parse_args()
    console = Console(highlight=False)
    # Feast warns about on-demand views on apply, and Dask about pandas downcasting; neither matters here.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="feast")
    warnings.filterwarnings("ignore", category=FutureWarning)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    versions = f"feast {feast.__version__}, pandas {pd.__version__}, pyarrow {pa.__version__}"
    print(f"python {platform.python_version()}, {versions}")
    print(
        f"feature rows {args.feature_rows:,} in {args.parts} parts, {args.users:,} users, "
        f"entity rows {args.entity_rows:,}, {len(FEATURES)} features, median of {args.runs} runs"
    )
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="berg-pit-bench-") as state:
        with console.status("generating data and preparing the store"):
            rows = feature_rows(rng, args.feature_rows, args.users)
            entities = entity_rows(rng, args.entity_rows, args.users)
            feature_store = FeatureStoreConfig.embedded(Path(state))
            store = open_store(feature_store)
            root = feature_store.offline_root
            prepare_store(store, FEATURES, root)
            schema = source_schema(USER_KEY, USER_FEATURES)
            filesystem = pyarrow.fs.LocalFileSystem()
            for part in np.array_split(rng.permutation(len(rows)), args.parts):
                table = pa.Table.from_pandas(rows.iloc[np.sort(part)], preserve_index=False)
                write_part(filesystem, f"{root}/{USER_VIEW}", table.select(schema.names).cast(schema))

        def feast_api() -> pd.DataFrame:
            return store.get_historical_features(entity_df=entities, features=REFS).to_df()

        with console.status("feast get_historical_features on Berg's store"):
            feast_s, retrieved = timed(args.runs, feast_api)
        with console.status("builder"):
            builder_s, built = timed(
                args.runs, lambda: build_training_frame(store, entities, REFS, strictly_before=False)
            )
        with console.status("merge_asof"):
            baseline_s, expected = timed(args.runs, lambda: merge_asof_baseline(rows, entities))

        for path, frame in (("feast", retrieved), ("builder", built)):
            if len(frame) != len(entities):
                raise SystemExit(f"{path} returned {len(frame)} rows for {len(entities)} entity rows")
            for name in FEATURES:
                got, want = frame[name].astype("float64").to_numpy(), expected[name].astype("float64").to_numpy()
                if not np.array_equal(got, want, equal_nan=True):
                    raise SystemExit(f"{path} and merge_asof disagree on {name}: {int((got != want).sum())} values")
        with_value = int(built[USER_AS_OF].notna().sum())
        print(
            f"agreement: feast == builder == merge_asof on every value and row "
            f"({with_value:,} rows with a user row, rest null)"
        )

        baseline_rate = args.entity_rows / baseline_s
        for path, seconds in (("feast", feast_s), ("builder", builder_s)):
            print(f"{path + ':':<12}{args.entity_rows / seconds:>12,.0f} entity rows/s   ({seconds:.3f} s)")
        print(f"{'merge_asof:':<12}{baseline_rate:>12,.0f} entity rows/s   ({baseline_s:.3f} s)")
        for path, seconds in (("feast", feast_s), ("builder", builder_s)):
            ratio = baseline_s / seconds
            print(f"ratio {path}/merge_asof: {ratio:.2f}   goal >= 0.2: {'met' if ratio >= 0.2 else 'NOT met'}")

        if args.feast_dask:
            config = store.config
            dask_store = feast.FeatureStore(
                config=feast.RepoConfig(
                    project=config.project,
                    provider=config.provider,
                    registry=config.registry,
                    online_store=config.online_store,
                    offline_store={"type": "dask"},
                    repo_path=config.repo_path,
                    entity_key_serialization_version=config.entity_key_serialization_version,
                )
            )
            known = entities[entities[USER_KEY].isin(set(rows[USER_KEY]))]  # Feast raises on unknown keys in parts
            with console.status("feast get_historical_features on Feast's Dask store"):
                began = time.perf_counter()
                result = dask_store.get_historical_features(
                    entity_df=known[[USER_KEY, EVENT_TIMESTAMP]].assign(__position=np.arange(len(known))),
                    features=REFS,
                ).to_df()
                dask_s = time.perf_counter() - began
            reference = expected[entities[USER_KEY].isin(set(rows[USER_KEY]))].reset_index(drop=True)
            mine = result.set_index("__position").sort_index()
            shared = reference.iloc[mine.index]
            wrong = int((~np.isclose(mine[FEATURES[0]].astype(float), shared[FEATURES[0]].astype(float))).sum())
            print(
                f"feast-dask: {len(known) / dask_s:>12,.0f} entity rows/s   ({dask_s:.3f} s, one run, "
                f"known users only): returned {len(result):,} of {len(known):,} rows, "
                f"{wrong:,} of those with a wrong {FEATURES[0]}"
            )


if __name__ == "__main__":
    main()
