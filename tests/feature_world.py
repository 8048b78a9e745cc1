"""A feature store filled with simulated history, the way the features service fills it, without Kafka.

The training pipeline's tests need weeks of event time with delayed labels: the
simulator's events go through the features service's own handler (aggregates,
Feast pushes, label store) in event-time order, and its snapshot job (the merchant view) runs once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from berg.features.label_store import LabelStore
from berg.features.store import close_store, open_store, prepare_store
from berg.features.store_config import FeatureStoreConfig
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.records import RawRecord
from berg_features.aggregates import HOUR, WindowAggregator
from berg_features.handler import FeaturesHandler
from berg_features.metrics import FeaturesMetrics
from berg_features.snapshot_job import SnapshotJob
from berg_features.streamed_view import FeastTarget
from berg_fraud.features import MERCHANT_SNAPSHOTS
from berg_fraud.simulator.generator import SimulationConfig, simulate
from berg_fraud.topics import LABELS_VALID, TRANSACTIONS_VALID
from berg_fraud.use_case import fraud
from tests.fraud_schema import FEATURES, USER_AGGREGATES, USER_STREAMING_VIEW, fraud_label_store, fraud_sources

__all__ = ["FeatureWorld", "simulated_feature_store"]

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeatureWorld:
    state_dir: Path
    offline_root: str
    start: datetime
    end: datetime
    transactions: int
    labels: int

    @property
    def environment(self) -> dict[str, str]:
        """The variables a process over this store is given (a service, kfp.local's steps)."""
        return {"BERG_STATE_DIR": str(self.state_dir)}

    @property
    def store_config(self) -> FeatureStoreConfig:
        return FeatureStoreConfig.embedded(self.state_dir)

    @property
    def label_store(self) -> LabelStore:
        return fraud_label_store(f"{self.offline_root}/label_store")


def _records(config: SimulationConfig, end: datetime) -> Iterator[RawRecord]:
    offsets = {TRANSACTIONS_VALID: itertools.count(), LABELS_VALID: itertools.count()}
    for event in simulate(config):
        if event.event_time >= end:
            return
        if event.kind not in ("scored", "label"):
            continue
        topic = TRANSACTIONS_VALID if event.kind == "scored" else LABELS_VALID
        yield RawRecord(topic, 0, next(offsets[topic]), event.key, event.value, (), 0)


def simulated_feature_store(
    state_dir: Path, *, days: int = 60, users: int = 300, merchants: int = 80, seed: int = 3, batch: int = 5000
) -> FeatureWorld:
    """``days`` of simulated traffic from 2026-01-01 through the features service's handler into a fresh store."""
    offline_root = str(state_dir / "feast" / "offline")
    end = START + timedelta(days=days)
    config = SimulationConfig(start=START, users=users, merchants=merchants, seed=seed)
    counts = {TRANSACTIONS_VALID: 0, LABELS_VALID: 0}
    store = open_store(FeatureStoreConfig.embedded(state_dir))
    try:
        prepare_store(store, FEATURES, offline_root)
        labels = fraud_label_store(f"{offline_root}/label_store")
        metrics = FeaturesMetrics.register(CollectorRegistry())
        handler = FeaturesHandler(
            FeastTarget(store),
            labels,
            [(USER_STREAMING_VIEW, WindowAggregator(USER_AGGREGATES, HOUR))],
            DeadLetterPublisher(None, "features"),
            metrics,
            **fraud_sources(),
        )
        records = _records(config, end)
        while chunk := list(itertools.islice(records, batch)):
            handler(chunk)
            for record in chunk:
                counts[record.topic] += 1
        SnapshotJob(
            MERCHANT_SNAPSHOTS,
            fraud().label_join,
            store,
            labels,
            offline_root,
            metrics,
            allowed_lateness=timedelta(hours=1),
            backfill=timedelta(days=days + 1),
            days_per_run=days + 1,
        ).run_once()
    finally:
        close_store(store)
    return FeatureWorld(state_dir, offline_root, START, end, counts[TRANSACTIONS_VALID], counts[LABELS_VALID])
