"""The simulator against the session's real Kafka: what the counts say is what lies on the topics."""

from __future__ import annotations

import collections
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from berg.settings import KafkaSettings
from berg.simulator.traffic import MALFORMED_CLASS_HEADER, SCENARIO_HEADER
from berg_app.simulator.bounds import bounded
from berg_app.simulator.producer import ProductionCounts, produce_events
from berg_fraud.simulator.generator import SimulationConfig, simulate
from berg_fraud.simulator.labels import LabelPolicy
from berg_fraud.simulator.scenarios import make_scenario
from berg_fraud.topics import LABELS_RAW, TRANSACTIONS_RAW

pytestmark = pytest.mark.integration

TOPICS = (TRANSACTIONS_RAW, LABELS_RAW)
START = datetime(2025, 6, 1, tzinfo=UTC)


def partitions(consumer: Any) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for topic in TOPICS for p in sorted(consumer.partitions_for_topic(topic) or ())]


def read_range(
    settings: KafkaSettings, start: dict[TopicPartition, int], end: dict[TopicPartition, int], timeout_s: float = 30
) -> list[Any]:
    """Every record between two sets of offsets (this test's records, whatever else shares the topics)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        expected = sum(end[tp] - start[tp] for tp in start)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=200).items():
                records += [r for r in batch if r.offset < end[tp]]
        return records
    finally:
        consumer.close()


def end_offsets(settings: KafkaSettings) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    try:
        return dict(consumer.end_offsets(partitions(consumer)))
    finally:
        consumer.close()


def test_a_malformed_run_lands_on_the_topics_as_counted(kafka_settings: KafkaSettings) -> None:
    config = SimulationConfig(
        start=START,
        scenario=make_scenario("malformed", START, malformed_share=0.25),
        seed=5,
        users=40,
        labels=LabelPolicy(manual_review_share=0.1),
    )
    events = list(bounded(simulate(config), max_scored=400))
    before = end_offsets(kafka_settings)
    progress: list[int] = []

    def remember(counts: ProductionCounts) -> None:
        progress.append(counts.sent)

    counts = produce_events(kafka_settings, events, on_progress=remember, progress_every=50)
    records = read_range(kafka_settings, before, end_offsets(kafka_settings))

    by_topic = collections.Counter(r.topic for r in records)
    assert by_topic == counts.by_topic
    assert counts.by_kind["label"] > 0
    assert counts.by_kind["malformed"] > 0
    assert counts.by_kind["scored"] + counts.by_kind["malformed"] == 400
    # The raw topics take records beyond ingestion's 1 MiB limit, so oversized records arrive whole.
    assert counts.refused_too_large == {}
    assert counts.by_malformed_class["oversized"] == sum(e.truth.malformed_class == "oversized" for e in events) > 0
    assert all(
        len(r.value) > 1024 * 1024 for r in records if dict(r.headers).get(MALFORMED_CLASS_HEADER) == b"oversized"
    )
    assert progress[-1] == len(events)

    user_ids = {e.key for e in events}
    malformed_classes: collections.Counter[str] = collections.Counter()
    for record in records:
        headers = dict(record.headers)
        assert record.key in user_ids
        assert record.key.startswith(b"user-")
        assert headers[SCENARIO_HEADER] == b"malformed"
        if MALFORMED_CLASS_HEADER in headers:
            malformed_classes[headers[MALFORMED_CLASS_HEADER].decode()] += 1
    assert malformed_classes == counts.by_malformed_class
    sent_values = {e.value for e in events}
    assert all(record.value in sent_values for record in records)
