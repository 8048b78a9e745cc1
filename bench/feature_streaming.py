"""Streaming aggregation throughput: ``transactions.valid`` into Feast, against a bare poll loop, in one run.

Starts its own Kafka (free ports, temporary state dir), produces N simulated
transactions to ``transactions.valid``, then times, over the same topic:

- baseline: a bare ``KafkaConsumer`` poll loop that reads every record and commits;
- features: Berg's ``ConsumerLoop`` + ``FeaturesHandler`` in this process, with the
  service's default micro-batch: decode, aggregate per user in event-time windows,
  push every row to the offline store and the newest per user to the online store
  (Feast push source, embedded profile: SQLite online store, parquet offline),
  append to the label store, commit.

Prints events/s of each, their ratio, and where the features path spends its time.

    uv run python bench/feature_streaming.py --events 20000
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from benchkit import bare_poll_loop, free_ports, produce_transactions, timed_service_path
from prometheus_client import CollectorRegistry

from berg.features.store import open_store, prepare_store
from berg.features.store_config import FeatureStoreConfig
from berg.kafka.dead_letter import DeadLetterPublisher
from berg_app.stack.local import LocalStack
from berg_app.stack.settings import StackSettings
from berg_features.aggregates import SECOND, WindowAggregator
from berg_features.handler import FeaturesHandler
from berg_features.metrics import FeaturesMetrics
from berg_features.settings import FeaturesSettings
from berg_features.streamed_view import FeastTarget
from berg_fraud.topics import TRANSACTIONS_VALID
from tests.fraud_schema import (
    FEATURES,
    USER_AGGREGATES,
    USER_STREAMING_VIEW,
    USER_VIEW,
    fraud_label_store,
    fraud_sources,
)


def features_path(stack: LocalStack, events: int, state: Path) -> float:
    settings = FeaturesSettings()
    offline_root = str(state / "feast" / "offline")
    store = open_store(FeatureStoreConfig.embedded(state))
    prepare_store(store, FEATURES, offline_root)
    registry = CollectorRegistry()
    metrics = FeaturesMetrics.register(registry)
    label_store = fraud_label_store(f"{offline_root}/label_store")
    handler = FeaturesHandler(
        FeastTarget(store),
        label_store,
        [(USER_STREAMING_VIEW, WindowAggregator(USER_AGGREGATES, int(settings.allowed_lateness_s * SECOND)))],
        DeadLetterPublisher(None, "features"),
        metrics,
        **fraud_sources(),
    )
    rate, elapsed = timed_service_path(stack, TRANSACTIONS_VALID, "bench-features", handler, settings, events)
    for store_name in ("offline", "online"):
        labels = {"view": USER_VIEW, "store": store_name}
        spent = registry.get_sample_value("berg_features_push_duration_seconds_sum", labels) or 0.0
        rows = registry.get_sample_value("berg_features_rows_pushed_total", labels) or 0.0
        print(f"  push {store_name:8s} {spent:6.2f} s of {elapsed:6.2f} s ({rows:.0f} rows)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    batch = FeaturesSettings().batch_max_records
    with tempfile.TemporaryDirectory(prefix="berg-bench-") as state:
        stack = LocalStack(StackSettings(state_dir=Path(state), ports=free_ports(), services=[], topic_partitions=3))
        try:
            stack.up()
            produce_transactions(stack, TRANSACTIONS_VALID, args.events)
            bare = bare_poll_loop(stack, TRANSACTIONS_VALID, args.events, batch)
            features = features_path(stack, args.events, Path(state))
        finally:
            stack.down()
    print(f"events: {args.events}, batch_max_records: {batch}, cpus: {os.cpu_count()}")
    print(f"bare kafka-python poll loop: {bare:10.0f} events/s")
    print(f"features path:               {features:10.0f} events/s  (aggregate, push offline + online, label store)")
    print(f"ratio features/bare: {features / bare:.2f}")


if __name__ == "__main__":
    main()
