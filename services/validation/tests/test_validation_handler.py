"""The validation handler routes each row by the GX verdict: forward, dead-letter, or quarantine the batch."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from services.validation.tests.helpers import NOW, STREAMS, TransactionFactory

from berg.contracts.dead_letter import DeadLetterV1
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.producer import encode_event
from berg.kafka.records import RawRecord
from berg_validation.handler import VALIDATED_AT_HEADER, ValidationHandler, ValidationMetrics
from berg_validation.suites import Suites
from tests.helpers import RecordingProducer

pytestmark = pytest.mark.unit


def handle(suites: Suites, records: list[RawRecord]) -> tuple[RecordingProducer, CollectorRegistry]:
    producer, registry = RecordingProducer(), CollectorRegistry()
    handler = ValidationHandler(
        suites,
        STREAMS,
        producer,
        DeadLetterPublisher(producer, "validation"),
        ValidationMetrics.register(registry),
        clock=lambda: NOW,
    )
    handler(records)
    return producer, registry


def ingested(value: bytes, offset: int) -> RawRecord:
    return RawRecord("transactions.ingested", offset % 3, offset, b"user", value, (("trace", b"t"),), 0)


def test_passing_rows_are_forwarded_and_failing_rows_dead_lettered_with_the_expectation(
    suites: Suites, transaction: TransactionFactory
) -> None:
    good = [transaction() for _ in range(5)]
    bad = transaction(amount=-5.0)
    records = [ingested(encode_event(t), i) for i, t in enumerate([*good, bad])]
    producer, registry = handle(suites, records)

    forwarded = producer.to("transactions.valid")
    assert [sent["value"] for sent in forwarded] == [r.value for r in records[:5]]
    assert all(dict(sent["headers"])[VALIDATED_AT_HEADER] == NOW.isoformat().encode() for sent in forwarded)
    assert all(sent["partition"] == records[i].partition for i, sent in enumerate(forwarded)), "co-partitioned"
    [dead] = producer.to("berg.dlq")
    envelope = DeadLetterV1.from_headers(dead["headers"])
    assert (envelope.reason, envelope.original_offset) == ("expectation_failed", 5)
    assert "amount" in envelope.error_message
    assert registry.get_sample_value("berg_validation_rows_total", {"kind": "transactions", "outcome": "failed"}) == 1


def test_an_exact_redelivery_in_the_same_batch_is_validated_once(
    suites: Suites, transaction: TransactionFactory
) -> None:
    event = encode_event(transaction())
    producer, registry = handle(suites, [ingested(event, 0), ingested(event, 1)])
    assert len(producer.to("transactions.valid")) == 1
    assert producer.to("berg.dlq") == []
    assert (
        registry.get_sample_value("berg_validation_rows_total", {"kind": "transactions", "outcome": "redelivered"}) == 1
    )


def test_two_different_events_with_one_event_id_both_fail_uniqueness(
    suites: Suites, transaction: TransactionFactory
) -> None:
    first = transaction()
    second = transaction(event_id=first.event_id)
    producer, _ = handle(suites, [ingested(encode_event(first), 0), ingested(encode_event(second), 1)])
    assert producer.to("transactions.valid") == []
    reasons = {DeadLetterV1.from_headers(sent["headers"]).error_message for sent in producer.to("berg.dlq")}
    assert all("event_id" in reason for reason in reasons)


def test_a_broken_batch_is_quarantined_whole(suites: Suites, transaction: TransactionFactory) -> None:
    # Every amount at the top of the range: rows pass one by one, the distribution does not.
    records = [ingested(encode_event(transaction(amount=999_999.0)), i) for i in range(150)]
    producer, registry = handle(suites, records)
    assert producer.to("transactions.valid") == []
    dead = producer.to("berg.dlq")
    assert len(dead) == 150
    assert {DeadLetterV1.from_headers(sent["headers"]).reason for sent in dead} == {"batch_quarantined"}
    assert registry.get_sample_value("berg_validation_batches_quarantined_total", {"kind": "transactions"}) == 1
