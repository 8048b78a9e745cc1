"""Ingestion's decode step: size limit, routing by topic, contract decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.decoding import RecordRejected
from berg.kafka.producer import encode_event
from berg.kafka.records import RawRecord
from berg_fraud.use_case import fraud
from berg_ingestion.handler import IngestionHandler, IngestionMetrics
from berg_ingestion.landing import LandingZone
from tests.helpers import make_transactions

pytestmark = pytest.mark.unit

USE_CASE = fraud()


def handler(tmp_path: Path) -> IngestionHandler:
    return IngestionHandler(
        LandingZone(tmp_path),
        (USE_CASE.scored, USE_CASE.labels),
        producer=None,
        dead_letters=DeadLetterPublisher(None, "ingestion"),
        metrics=IngestionMetrics.register(CollectorRegistry()),
        max_record_bytes=2048,
    )


def raw(topic: str, value: bytes) -> RawRecord:
    return RawRecord(topic, 0, 0, b"u", value, (), 0)


def test_a_record_over_the_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    with pytest.raises(RecordRejected) as raised:
        handler(tmp_path).decode(raw("transactions.raw", b"{" + b" " * 4096))
    assert raised.value.reason == "record_too_large"


def test_records_decode_against_their_topics_contract(tmp_path: Path) -> None:
    [transaction] = make_transactions(1, 3)
    assert handler(tmp_path).decode(raw("transactions.raw", encode_event(transaction))) == transaction
    with pytest.raises(RecordRejected) as raised:
        handler(tmp_path).decode(raw("labels.raw", encode_event(transaction)))
    assert raised.value.reason == "contract_violation"


def test_a_record_from_an_unexpected_topic_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordRejected) as raised:
        handler(tmp_path).decode(raw("somewhere.else", b"{}"))
    assert raised.value.reason == "unknown_topic"
