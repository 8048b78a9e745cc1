"""The exporter's reader meets a record batch its client cannot decode: dead-lettered, skipped, and it reads on."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from berg.contracts.dead_letter import DeadLetterV1
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.undecodable import UndecodableBatches
from berg.registry import ModelRegistry
from berg_fraud.use_case import fraud, problem_card
from berg_monitoring.exporter import Exporter
from berg_monitoring.metrics import MonitoringMetrics, SnapshotCollector
from berg_monitoring.references import ReferenceBook
from berg_monitoring.settings import MonitoringSettings
from tests.helpers import RecordingProducer
from tests.record_batches import PartitionedConsumer, batch_bytes

pytestmark = pytest.mark.unit


def test_a_batch_the_reader_cannot_decode_is_dead_lettered_and_skipped_and_reading_goes_on(tmp_path: Path) -> None:
    # Predictions partition 0: a batch in a codec the client does not know (offsets 0-2), then two more records.
    consumer = PartitionedConsumer({0: [3, 4]}, bad={0: batch_bytes(0, [b"a", b"b", b"c"], codec=5)}, topic="p")
    settings = MonitoringSettings(registry_uri=str(tmp_path / "registry"), predictions_topic="p", labels_topic="l")
    producer = RecordingProducer()
    dead_letters = DeadLetterPublisher(producer, "monitoring")
    registry = CollectorRegistry()
    card = problem_card()
    exporter = Exporter(
        settings,
        consumer,
        ReferenceBook(ModelRegistry(settings.registry_uri), "fraud", settings.registry_poll_s),
        card,
        SnapshotCollector("fraud", settings.new_labelled_rows_threshold, currency=card.costs.currency),
        MonitoringMetrics.register(registry),
        dead_letters,
        UndecodableBatches.register(registry, dead_letters),
        use_case=fraud(),
        model_name="fraud",
    )

    assert exporter.step() == 0
    assert consumer.positions[TopicPartition("p", 0)] == 3
    assert exporter.step() == 2, "the records after the batch are read"

    first, *rest = (DeadLetterV1.from_headers(sent["headers"]) for sent in producer.to("berg.dlq"))
    assert (first.stage, first.reason, first.error_class) == (
        "monitoring",
        "undecodable_batch",
        "UnsupportedCodecError",
    )
    assert (first.original_topic, first.original_partition, first.original_offset) == ("p", 0, 0)
    assert "p/0 offsets 0..2 (3 offsets)" in first.error_message
    assert [(e.reason, e.original_offset) for e in rest] == [("contract_violation", 3), ("contract_violation", 4)]
    assert registry.get_sample_value("berg_consumer_undecodable_batches_total", {"topic": "p"}) == 1
