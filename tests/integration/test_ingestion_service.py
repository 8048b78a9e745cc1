"""The ingestion service as a process against real Kafka: land, publish, dead-letter, scale out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from berg.contracts.dead_letter import DeadLetterV1
from berg.kafka.producer import encode_event
from berg.kafka.topics import DEAD_LETTER
from berg.settings import KafkaSettings
from berg_app.stack.local import LocalStack
from berg_fraud.contracts import LabelV1, TransactionV1
from berg_fraud.topics import LABELS_INGESTED, LABELS_RAW, TRANSACTIONS_INGESTED, TRANSACTIONS_RAW
from berg_ingestion.landing import LandingZone
from tests.helpers import make_transactions, wait_for
from tests.processes import ServiceProcess

pytestmark = pytest.mark.integration


class TopicReader:
    """Reads a topic from the start, accumulating what it has seen."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.consumer = KafkaConsumer(topic, bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest")
        self.records: list[Any] = []

    def read(self) -> list[Any]:
        for batch in self.consumer.poll(timeout_ms=200).values():
            self.records.extend(batch)
        return self.records

    def close(self) -> None:
        self.consumer.close()


def ingestion(stack: LocalStack, tmp_path: Path, name: str, **settings: str) -> ServiceProcess:
    return ServiceProcess(
        "berg_ingestion",
        "BERG_INGESTION_",
        {
            "KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap,
            "LANDING_DIR": str(tmp_path / "landing"),
            "GROUP_ID": f"ingestion-{uuid.uuid4().hex[:6]}",
            **settings,
        },
        tmp_path,
        name,
    )


@pytest.fixture
def readers(kafka_settings: KafkaSettings) -> Iterator[dict[str, TopicReader]]:
    topics = {name: TopicReader(kafka_settings, name) for name in (TRANSACTIONS_INGESTED, LABELS_INGESTED, DEAD_LETTER)}
    yield topics
    for reader in topics.values():
        reader.close()


def test_ingestion_lands_publishes_and_dead_letters(
    stack: LocalStack, kafka_settings: KafkaSettings, producer: Any, tmp_path: Path, readers: dict[str, TopicReader]
) -> None:
    transactions = make_transactions(100, 11)
    labels = [
        LabelV1(
            event_id=uuid.uuid4(),
            event_time=t.event_time,
            transaction_event_id=t.event_id,
            user_id=t.user_id,
            is_fraud=False,
            source="manual_review",
        )
        for t in transactions[:10]
    ]
    run = uuid.uuid4().hex.encode()
    bad = {
        b"\xff\xfe not utf-8": "undecodable",
        b"{not json": "undecodable",
        b'{"schema_version": 1}': "contract_violation",
        b"{" + b" " * (1536 * 1024) + b"}": "record_too_large",
    }
    for t in transactions:
        producer.send(TRANSACTIONS_RAW, key=t.user_id.encode(), value=encode_event(t), headers=[("trace", run)])
    for label in labels:
        producer.send(LABELS_RAW, key=label.user_id.encode(), value=encode_event(label))
    for value in bad:
        producer.send(TRANSACTIONS_RAW, key=run, value=value)
    producer.flush()

    service = ingestion(stack, tmp_path, "ingestion")
    service.start()
    try:
        service.wait_ready()
        expected = {str(t.event_id) for t in transactions}

        def ingested_ids() -> set[str]:
            return {
                TransactionV1.model_validate_json(r.value).event_id.hex for r in readers[TRANSACTIONS_INGESTED].read()
            }

        wait_for(lambda: {uuid.UUID(i).hex for i in expected} <= ingested_ids(), 300, "every transaction downstream")
        wait_for(lambda: len([r for r in readers[DEAD_LETTER].read() if r.key == run]) >= len(bad), 300, "dead letters")
        wait_for(lambda: len(readers[LABELS_INGESTED].read()) >= 10, 300, "labels downstream")
        assert service.metric("berg_dead_letters_total", {"reason": "record_too_large"}) >= 1
    finally:
        assert service.stop() == 0, service.log_tail()

    mine = [r for r in readers[TRANSACTIONS_INGESTED].records if (r.headers and ("trace", run) in r.headers)]
    assert {dict(r.headers)["trace"] for r in mine} == {run}, "original headers travel downstream"
    assert all("berg.ingested_at" in dict(r.headers) for r in mine)
    assert all(r.key == TransactionV1.model_validate_json(r.value).user_id.encode() for r in mine)

    dead = [r for r in readers[DEAD_LETTER].records if r.key == run]
    assert sorted(DeadLetterV1.from_headers(r.headers).reason for r in dead) == sorted(bad.values())
    assert {r.value for r in dead} == set(bad), "dead letters keep the original bytes"

    landed = LandingZone(tmp_path / "landing")
    assert set(landed.read("transactions").column("event_id").to_pylist()) >= expected
    assert landed.read("labels").num_rows == 10


def group_is_stable_with(admin: Any, group: str, members: int) -> bool:
    info = admin.describe_groups([group]).get(group, {})
    return info.get("group_state") == "Stable" and len(info.get("members", [])) == members


def test_two_instances_share_the_partitions_and_stopping_one_loses_nothing(
    stack: LocalStack, kafka_settings: KafkaSettings, producer: Any, tmp_path: Path, admin: Any
) -> None:
    group = f"ingestion-{uuid.uuid4().hex[:6]}"
    first = ingestion(stack, tmp_path, "first", GROUP_ID=group, BATCH_MAX_RECORDS="50")
    second = ingestion(stack, tmp_path, "second", GROUP_ID=group, BATCH_MAX_RECORDS="50")
    transactions = make_transactions(3000, 12)
    landing = LandingZone(tmp_path / "landing")

    def landed() -> set[str]:
        table = landing.read("transactions")
        return set(table.column("event_id").to_pylist()) if table.num_rows else set()

    both = (first, second)
    first.start()
    second.start()
    try:
        first.wait_ready()
        second.wait_ready()
        wait_for(lambda: group_is_stable_with(admin, group, 2), 300, "both instances in the group", interval_s=0.5)
        for index, t in enumerate(transactions):
            producer.send(TRANSACTIONS_RAW, key=t.user_id.encode(), value=encode_event(t))
            if index == 1000:
                producer.flush()
                wait_for(
                    lambda: all(s.metric("berg_ingestion_landed_total", {"kind": "transactions"}) > 0 for s in both),
                    60,
                    "both instances to take a share",
                )
                assert second.stop() == 0, second.log_tail()
        producer.flush()
        expected = {str(t.event_id) for t in transactions}
        wait_for(lambda: expected <= landed(), 300, "every event landed after one instance stopped")
    finally:
        first.stop()
        second.stop()
    table = landing.read("transactions")
    ids = [i for i in table.column("event_id").to_pylist() if i in expected]
    assert len(ids) == len(set(ids)) == len(expected), "each event landed exactly once"
