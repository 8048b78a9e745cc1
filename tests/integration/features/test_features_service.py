"""The features service against real Kafka and a real Feast store, killed with SIGKILL along the way.

Transactions arrive per user in production order, some shifted back in event
time within the allowed lateness (aggregated in place) and some beyond it
(dead-lettered as ``late_event``); labels follow. The service is killed from
outside at random points and kills itself between its sinks and its commit.
At the end the offline rows, the online values, the label store and the
dead letters all equal a brute-force oracle.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as ds
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from berg.contracts.dead_letter import DeadLetterV1
from berg.features.store import open_store
from berg.features.store_config import FeatureStoreConfig
from berg.kafka.topics import DEAD_LETTER
from berg.settings import KafkaSettings
from berg_features.aggregates import SECOND, WindowEvent
from berg_features.handler import event_from_scored
from berg_features.snapshots import snapshot_availability, snapshot_rows, snapshot_times
from berg_fraud.contracts import LabelV1, TransactionV1
from berg_fraud.features import MERCHANT_SNAPSHOTS
from berg_fraud.use_case import fraud
from tests.feature_oracle import assert_rows_equal, oracle_accepts, oracle_row
from tests.fraud_schema import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    MERCHANT_FEATURES,
    MERCHANT_KEY,
    MERCHANT_VIEW,
    USER_AGGREGATES,
    USER_FEATURES,
    USER_KEY,
    USER_VIEW,
    fraud_label_store,
)
from tests.helpers import make_transactions, wait_for
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]  # bounds a hang only

LATENESS_S = 3600
VIEW = {"view": MERCHANT_SNAPSHOTS.name}
TRANSACTIONS = 1500


def shifted_stream(seed: int) -> tuple[list[TransactionV1], list[LabelV1]]:
    """Simulated transactions, a few shifted back within the lateness and a few beyond it; labels for some."""
    rng = random.Random(seed)
    transactions = []
    for index, tx in enumerate(make_transactions(TRANSACTIONS, seed=seed)):
        if index % 37 == 5:
            tx = tx.model_copy(update={"event_time": tx.event_time - timedelta(minutes=rng.randint(1, 50))})
        elif index % 97 == 11:
            tx = tx.model_copy(update={"event_time": tx.event_time - timedelta(hours=rng.randint(3, 30))})
        transactions.append(tx)
    labels = [
        LabelV1(
            event_id=uuid.uuid4(),
            event_time=tx.event_time + timedelta(days=rng.randint(1, 20)),
            transaction_event_id=tx.event_id,
            user_id=tx.user_id,
            is_fraud=rng.random() < 0.3,
        )
        for tx in transactions[::9]
    ]
    return transactions, labels


def lag(bootstrap: str, group: str, topics: tuple[str, ...]) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        ends = probe.end_offsets([TopicPartition(t, p) for t in topics for p in probe.partitions_for_topic(t)])
        committed = {tp: meta.offset for tp, meta in admin.list_group_offsets(group).get(group, {}).items()}
        return sum(end - committed.get(tp, 0) for tp, end in ends.items())
    finally:
        probe.close()
        admin.close()


def dead_letters_from(bootstrap: str, topic: str) -> dict[tuple[int, int], tuple[DeadLetterV1, bytes]]:
    """Dead letters whose original topic is ``topic``, one per original coordinate."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(DEAD_LETTER, p) for p in sorted(consumer.partitions_for_topic(DEAD_LETTER) or ())]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(partitions)
    found: dict[tuple[int, int], tuple[DeadLetterV1, bytes]] = {}
    try:
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    envelope = DeadLetterV1.from_headers(record.headers)
                    if envelope.original_topic == topic:
                        found[(envelope.original_partition, envelope.original_offset)] = (envelope, record.value)
    finally:
        consumer.close()
    return found


def test_aggregates_and_online_values_equal_the_oracle_after_kill9s(
    kafka_settings: KafkaSettings, new_topic: Any, producer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = kafka_settings.bootstrap_servers
    tx_topic, label_topic = new_topic(3), new_topic(3)
    group = f"features-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "state"
    offline = tmp_path / "offline"
    monkeypatch.setenv("BERG_STATE_DIR", str(state))
    transactions, labels = shifted_stream(seed=11)
    for tx in transactions:
        producer.send(tx_topic, key=tx.user_id.encode(), value=tx.model_dump_json().encode())
    for label in labels:
        producer.send(label_topic, key=label.user_id.encode(), value=label.model_dump_json().encode())
    producer.flush(30)

    service = ServiceProcess(
        "berg_features",
        "BERG_FEATURES_",
        {
            "KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "GROUP_ID": group,
            "SCORED_TOPIC": tx_topic,
            "LABELS_TOPIC": label_topic,
            "OFFLINE_ROOT": str(offline),
            "ALLOWED_LATENESS_S": str(LATENESS_S),
            "BATCH_MAX_RECORDS": "60",
            "BATCH_MAX_WAIT_MS": "200",
            "SNAPSHOT_INTERVAL_S": "1",
            "ENVIRONMENT": "development",
        },
        tmp_path,
        "features",
    )
    rng = random.Random(3)
    try:
        # Killed from outside at random points...
        for _ in range(3):
            service.start()
            service.wait_ready(timeout_s=600)  # a bound on a hang: a loaded machine imports Feast slowly
            seen = service.metric("berg_features_events_total", {"kind": "scored", "outcome": "accepted"})
            wait_for(
                lambda seen=seen: (
                    service.metric("berg_features_events_total", {"kind": "scored", "outcome": "accepted"})
                    > seen + rng.randint(1, 100)
                ),
                600,
                "the features service to aggregate more events",
            )
            service.kill9()
        # ...and by itself, after its sinks and before its commit.
        for _ in range(3):
            service.start(FAULT_CRASH_BEFORE_COMMIT="0.5")
            wait_for(lambda: not service.alive(), 600, "the fault injection to kill the features service")
        service.start()
        service.wait_ready(timeout_s=600)
        wait_for(lambda: lag(bootstrap, group, (tx_topic, label_topic)) == 0, 600, "features lag 0")
        # Each crash came after the sinks had written a batch it never committed, so Kafka redelivered
        # that batch to the next process. (The final process's duplicate counter is no proof: the last
        # redelivered batch may hold only labels, whose store dedups without counting.)
        crashes = service.log_path.read_text(errors="replace").count("fault injection: killing this process")
        assert crashes == 3, service.log_tail()
        assert service.starts >= 7

        events = [event_from_scored(USER_AGGREGATES, tx) for tx in transactions]
        accepted = oracle_accepts(events, LATENESS_S * SECOND)
        accepted_ids = {event.event_id for event in accepted}
        late_ids = {event.event_id for event in events} - accepted_ids
        assert late_ids, "the stream should hold late events"

        # The label store holds every accepted transaction and every label, once per event_id.
        label_store = fraud_label_store(str(offline / "label_store"))
        wait_for(lambda: set(label_store.read("transactions")["event_id"]) == accepted_ids, 300, "the label store")
        assert set(label_store.read("labels")["event_id"]) == {str(label.event_id) for label in labels}

        # Offline: the newest row per (user, event time) equals the oracle, for exactly the accepted events.
        rows = ds.dataset(str(offline / USER_VIEW), format="parquet").to_table().to_pandas()
        rows = rows.sort_values(CREATED_TIMESTAMP).drop_duplicates([USER_KEY, EVENT_TIMESTAMP], keep="last")
        expected_keys = {(e.key, e.event_us) for e in accepted}
        actual = {
            (row[USER_KEY], int(pd.Timestamp(row[EVENT_TIMESTAMP]).value // 1000)): row
            for row in rows.to_dict("records")
        }
        assert set(actual) == expected_keys
        names = [spec.name for spec in USER_FEATURES]
        for (user_id, at_us), row in actual.items():
            assert_rows_equal({n: row[n] for n in names}, oracle_row(accepted, user_id, at_us), f"{user_id}@{at_us}")

        # Online: each user's value is the oracle at their latest accepted transaction.
        latest: dict[str, WindowEvent] = {}
        for event in accepted:
            if event.key not in latest or event.event_us >= latest[event.key].event_us:
                latest[event.key] = event
        store = open_store(FeatureStoreConfig.embedded(state))
        online = store.get_online_features(
            features=[f"{USER_VIEW}:{name}" for name in names],
            entity_rows=[{USER_KEY: user_id} for user_id in sorted(latest)],
        ).to_dict()
        for index, user_id in enumerate(sorted(latest)):
            values = {name: online[name][index] for name in names}
            assert_rows_equal(values, oracle_row(accepted, user_id, latest[user_id].event_us), f"online {user_id}")

        # Merchants: the job ran without failing, and the online value of each merchant is its
        # latest snapshot at or before the materialized watermark, stamped when the slowest partition
        # reached it plus the lateness (snapshots and stamps: services/features/tests/test_snapshots.py).
        stored = label_store.read("transactions")
        low = stored.groupby("source_partition")["event_time"].max().min().to_pydatetime()
        watermark = low - timedelta(seconds=LATENESS_S)
        wait_for(
            lambda: service.metric("berg_features_snapshot_watermark_timestamp_seconds", VIEW) >= watermark.timestamp(),
            60,
            "the merchant job to reach the watermark",
        )
        assert service.metric("berg_features_snapshot_runs_total", {**VIEW, "outcome": "failed"}) == 0
        last_snapshot = snapshot_times(watermark - timedelta(hours=1), watermark, MERCHANT_SNAPSHOTS.every)[-1]
        available = snapshot_availability(
            stored,
            [last_snapshot],
            lateness=timedelta(seconds=LATENESS_S),
            partitions=set(stored["source_partition"].astype(int)),
        )
        assert available[0] is not None
        snapshot = snapshot_rows(
            MERCHANT_SNAPSHOTS,
            fraud().label_join,
            stored,
            label_store.read("labels"),
            [last_snapshot],
            available=[available[0]],
        ).set_index(MERCHANT_KEY)
        merchant_names = [spec.name for spec in MERCHANT_FEATURES]
        merchant_online = (
            open_store(FeatureStoreConfig.embedded(state))
            .get_online_features(
                features=[f"{MERCHANT_VIEW}:{name}" for name in merchant_names],
                entity_rows=[{MERCHANT_KEY: merchant} for merchant in snapshot.index],
            )
            .to_dict()
        )
        assert len(snapshot) > 0
        for index, merchant in enumerate(snapshot.index):
            for name in merchant_names:
                expected_value = snapshot.loc[merchant, name]
                got = merchant_online[name][index]
                assert got is not None, (merchant, name)
                assert math.isclose(got, expected_value, rel_tol=1e-9) or (
                    math.isnan(expected_value) and math.isnan(got)
                ), (merchant, name, got, expected_value)

        # Late events are dead-lettered with the reason, bytes unchanged, once per original record.
        letters = dead_letters_from(bootstrap, tx_topic)
        lettered_ids = {str(TransactionV1.model_validate_json(value).event_id) for _, value in letters.values()}
        assert lettered_ids == late_ids
        assert {envelope.reason for envelope, _ in letters.values()} == {"late_event"}
    finally:
        service.stop()
