"""Training/serving skew: serving scores each transaction with the vector training builds for it.

A replayed span goes through the real data plane (Kafka, ingestion, validation, the
features service with its merchant job) and serving scores it as a payment app would:
slice by slice of event time, each slice scored only once the data plane has stored
everything before it (consumer groups caught up, and the merchant job has run on it),
then produced. The slices are cut so that no user appears twice in one and none
straddles a moment at which a merchant snapshot may become available, so every
transaction is scored with exactly the state before it.

Then the feature vector serving used for each transaction (the prediction log's
``features``) must equal the point-in-time training vector of the same transaction
(:func:`berg.features.dataset.build_training_frame` with the model's feature service),
float32 rounding aside: what the model reads. Whatever differs is training/serving skew.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from berg.contracts import PredictionLogReader, PredictionV3
from berg.features.dataset import build_training_frame
from berg.features.store import close_store, open_store
from berg.features.store_config import FeatureStoreConfig
from berg.kafka.producer import open_producer
from berg.kafka.topics import PREDICTIONS
from berg.registry import Lineage, ModelRegistry, VersionMetadata
from berg.simulator.traffic import SimulatedEvent
from berg_app.lifecycle.dataplane import DataPlaneProbe, data_plane_stages, wait_for_snapshot_job
from berg_app.lifecycle.replay import event_time_slices, replay_scored
from berg_app.simulator.producer import send_events
from berg_app.stack.local import LocalStack
from berg_fraud.contracts import TransactionV1
from berg_fraud.simulator.generator import SimulationConfig, Simulator
from berg_fraud.use_case import fraud
from tests.fraud_schema import (
    EVENT_TIMESTAMP,
    FEATURE_SERVICE,
    MERCHANT_AS_OF,
    REQUEST_AMOUNT,
    REQUEST_EVENT_UNIX,
)
from tests.fraud_serving import SERVABLE_FEATURES
from tests.helpers import free_port, running_stack
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

USERS = 300
MERCHANTS = 20
HISTORY = timedelta(days=2)
SPAN = timedelta(hours=8)
LATENESS = timedelta(hours=1)
SNAPSHOT_EVERY = timedelta(hours=1)
MODEL = "fraud"
CATCH_UP_S = 600.0
"""Only bounds a hang: each wait returns as soon as its condition holds (a loaded machine starts slowly)."""


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Kafka of its own: the services use the standard topics, which no other test may share."""
    with running_stack(tmp_path_factory.mktemp("skew-stack")) as local:
        yield local


def register_model(registry: ModelRegistry, staging: Path) -> None:
    """A small booster over every servable feature: serving needs a model to log what it fed it."""
    import xgboost as xgb

    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, len(SERVABLE_FEATURES))).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "nthread": 1}, xgb.DMatrix(x, label=x[:, 0] > 0), 5
    )
    staging.mkdir(parents=True)
    (staging / "model.bst").write_bytes(bytes(booster.save_raw(raw_format="ubj")))
    now = datetime.now(UTC)
    metadata = VersionMetadata(
        lineage=Lineage(
            data_start=now - timedelta(days=1),
            data_end=now,
            feature_service=FEATURE_SERVICE,
            pipeline_run_id="skew-test",
            code_version="test",
        ),
        params={"features": list(SERVABLE_FEATURES), "threshold": 0.5},
    )
    registry.register(MODEL, staging, metadata)
    registry.promote(MODEL, "v0001", reason="the skew test's model")


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record (every hop keys by user)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def split_at_watermark_steps(slices: Sequence[list[SimulatedEvent]], partitions: int) -> list[list[SimulatedEvent]]:
    """``slices``, each also cut after every partition's first transaction past an hour boundary.

    The merchant job's watermark moves when the slowest partition passes a boundary (the snapshot an
    allowed lateness before it becomes available then): with a cut after each partition's first crossing,
    no slice straddles that moment.
    """
    crossed: dict[int, datetime] = {}
    result: list[list[SimulatedEvent]] = []
    for records in slices:
        current: list[SimulatedEvent] = []
        for event in records:
            current.append(event)
            if event.kind != "scored":
                continue
            partition = partition_of(event.key, partitions)
            hour = event.event_time.replace(minute=0, second=0, microsecond=0)
            if crossed.get(partition) != hour:
                crossed[partition] = hour
                result.append(current)
                current = []
        if current:
            result.append(current)
    return result


def read_predictions(bootstrap: str, expected: int) -> dict[uuid.UUID, PredictionV3]:
    """The prediction log (any version), keyed by transaction, once it holds ``expected`` transactions."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(PREDICTIONS, p) for p in sorted(consumer.partitions_for_topic(PREDICTIONS) or ())]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    found: dict[uuid.UUID, PredictionV3] = {}
    log = PredictionLogReader()
    try:
        idle = 0
        while len(found) < expected and idle < 60:  # a minute without a new record: the log is not coming
            batch = consumer.poll(timeout_ms=1000)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                for record in records:
                    prediction = log.model_validate_json(record.value)
                    found[prediction.scored_event_id] = prediction
    finally:
        consumer.close()
    return found


def as_model_reads(value: object) -> float:
    """A feature value as the model reads it: float32, NaN for missing."""
    if value is None or value is pd.NA:
        return math.nan
    return float(np.float32(float(value)))  # type: ignore[arg-type]


def test_serving_scores_each_transaction_with_its_point_in_time_training_vector(
    own_stack: LocalStack, tmp_path: Path
) -> None:
    bootstrap = own_stack.settings.kafka_bootstrap
    state = tmp_path / "state"
    registry_dir = tmp_path / "registry"
    registry = ModelRegistry(registry_dir)
    register_model(registry, tmp_path / "model")
    feast_env = {"BERG_STATE_DIR": str(state)}
    common = {"KAFKA__BOOTSTRAP_SERVERS": bootstrap, "BATCH_MAX_WAIT_MS": "100", "ENVIRONMENT": "development"}
    ingestion = ServiceProcess(
        "berg_ingestion",
        "BERG_INGESTION_",
        {**common, "LANDING_DIR": str(state / "landing")},
        tmp_path,
        "ingestion",
        environment=feast_env,
    )
    validation = ServiceProcess(
        "berg_validation",
        "BERG_VALIDATION_",
        {**common, "DATA_DOCS_DIR": str(state / "gx")},
        tmp_path,
        "validation",
        environment=feast_env,
    )
    features = ServiceProcess(
        "berg_features",
        "BERG_FEATURES_",
        {
            **common,
            "OFFLINE_ROOT": str(state / "feast" / "offline"),
            "ALLOWED_LATENESS_S": str(LATENESS.total_seconds()),
            "SNAPSHOT_INTERVAL_S": "0.5",
        },
        tmp_path,
        "features",
        environment=feast_env,
    )
    serving = ServiceProcess(
        "berg_serving",
        "BERG_SERVING_",
        {
            "KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "SHAPE": "fused",
            "REGISTRY_URI": str(registry_dir),
            "GRPC__PORT": str(free_port()),
            "POLL_INTERVAL_S": "0.5",
        },
        tmp_path,
        "serving",
        environment=feast_env,
    )
    services = [ingestion, validation, features, serving]
    probe = DataPlaneProbe(own_stack.kafka_settings, data_plane_stages(fraud()))
    producer = open_producer(own_stack.kafka_settings)
    features_url = f"http://127.0.0.1:{features.port}"
    try:
        for service in services[:3]:
            service.start()
        for service in services[:3]:
            service.wait_ready(CATCH_UP_S)
        serving.start()  # after the features service has applied Feast's registry
        serving.wait_ready(CATCH_UP_S)
        assert serving.ready(), serving.log_tail()

        # Two days of history, stored before anything is scored; then eight hours, scored slice by slice.
        start = (datetime.now(UTC) - timedelta(days=1)).replace(hour=6, minute=0, second=0, microsecond=0) - HISTORY
        stream = Simulator(SimulationConfig(start=start, seed=23, users=USERS, merchants=MERCHANTS)).events()
        history: list[SimulatedEvent] = []
        span: list[SimulatedEvent] = []
        for event in stream:
            if event.event_time >= start + HISTORY + SPAN:
                break
            (history if event.event_time < start + HISTORY else span).append(event)
        send_events(producer, history)
        probe.wait_until_caught_up(CATCH_UP_S)
        # Cut before any user's second transaction and at every hour: with a lateness of whole hours, the
        # moments a merchant snapshot (hourly at s, computed once every partition passed s + lateness) may
        # become available.
        assert not LATENESS % SNAPSHOT_EVERY
        by_user = event_time_slices(span, SNAPSHOT_EVERY, one_per_key=True)
        slices = split_at_watermark_steps(list(by_user), own_stack.settings.topic_partitions)
        transactions = [event for event in span if event.kind == "scored"]
        assert len(transactions) >= 150, "the span should hold a few hundred transactions"

        client = httpx.Client(timeout=30)

        def score(batch: Sequence[SimulatedEvent]) -> None:
            body = b'{"instances":[' + b",".join(event.value for event in batch) + b"]}"
            response = client.post(f"{serving_url}/v1/models/{MODEL}:predict", content=body)
            assert response.status_code == 200, response.text

        def caught_up() -> None:
            probe.wait_until_caught_up(CATCH_UP_S)
            wait_for_snapshot_job(features_url, CATCH_UP_S)

        serving_url = f"http://127.0.0.1:{serving.port}"
        try:
            timings = replay_scored(
                slices, catch_up=caught_up, score=score, produce=lambda records: send_events(producer, records)
            )
        finally:
            client.close()
        assert timings.scored == len(transactions)
        served = read_predictions(bootstrap, len(transactions))
    finally:
        producer.close()
        probe.close()
        for service in reversed(services):
            service.stop()

    scored = [TransactionV1.model_validate_json(event.value) for event in transactions]
    assert set(served) == {t.event_id for t in scored}, "every scored transaction is in the prediction log"
    entities = pd.DataFrame(
        {
            "user_id": [t.user_id for t in scored],
            "merchant_id": [t.merchant_id for t in scored],
            EVENT_TIMESTAMP: [t.event_time for t in scored],
            REQUEST_AMOUNT: [t.amount for t in scored],
            REQUEST_EVENT_UNIX: [t.event_time.timestamp() for t in scored],
        }
    )
    store = open_store(FeatureStoreConfig.embedded(state))
    try:
        trained = build_training_frame(store, entities, FEATURE_SERVICE, with_as_of=True)
    finally:
        close_store(store)

    skew: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    minutes: Counter[int] = Counter()
    """Transactions with a merchant feature skewed, by ten minutes after the hour (where a merchant
    snapshot's availability would show)."""
    for index, transaction in enumerate(scored):
        logged = served[transaction.event_id].features
        differing = []
        for name in SERVABLE_FEATURES:
            at_serving = as_model_reads(logged.get(name))
            at_training = as_model_reads(trained[name].iloc[index])
            if at_serving == at_training or (math.isnan(at_serving) and math.isnan(at_training)):
                continue
            differing.append(name)
            snapshot = trained[MERCHANT_AS_OF].iloc[index]
            as_of = "none" if pd.isna(snapshot) else f"{datetime.fromtimestamp(snapshot, UTC):%H:%M}"
            examples.setdefault(name, []).append(
                f"{transaction.event_time:%H:%M:%S} user {transaction.user_id} merchant {transaction.merchant_id}: "
                f"served {at_serving!r}, trained {at_training!r} (merchant snapshot {as_of})"
            )
        skew.update(differing)
        if any(name.startswith("merchant_") for name in differing):
            minutes[transaction.event_time.minute // 10 * 10] += 1
    report = {name: (count, examples[name][:3]) for name, count in skew.most_common()}
    assert not skew, (
        f"{len(scored)} transactions in {timings.slices} slices; skew by feature: {report}; merchant skew by "
        f"ten minutes after the hour: {sorted(minutes.items())}"
    )
