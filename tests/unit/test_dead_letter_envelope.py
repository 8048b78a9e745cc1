"""The dead-letter envelope: headers out, headers back, original record untouched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from berg.contracts.dead_letter import HEADER_PREFIX, MAX_MESSAGE_LENGTH, DeadLetterV1, original_headers
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.decoding import RecordRejected, Rejected
from berg.kafka.records import RawRecord
from tests.helpers import RecordingProducer

pytestmark = pytest.mark.unit


def envelope(**overrides: object) -> DeadLetterV1:
    fields: dict[str, object] = {
        "stage": "ingestion",
        "reason": "undecodable",
        "error_class": "ValidationError",
        "error_message": "Invalid JSON",
        "original_topic": "transactions.raw",
        "original_partition": 2,
        "original_offset": 1041,
        "failed_at": datetime(2026, 11, 27, 10, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return DeadLetterV1.model_validate(fields)


def test_headers_round_trip_to_the_same_envelope() -> None:
    original = envelope()
    headers = [("traceparent", b"00-abc-01"), *original.to_headers()]
    assert DeadLetterV1.from_headers(headers) == original


def test_headers_follow_the_connect_convention_under_a_berg_prefix() -> None:
    names = {name for name, _ in envelope().to_headers()}
    assert {
        f"{HEADER_PREFIX}topic",
        f"{HEADER_PREFIX}partition",
        f"{HEADER_PREFIX}offset",
        f"{HEADER_PREFIX}stage",
        f"{HEADER_PREFIX}reason",
        f"{HEADER_PREFIX}exception.class.name",
        f"{HEADER_PREFIX}exception.message",
    } <= names


def test_original_headers_are_recovered_for_a_replay() -> None:
    headers = [("traceparent", b"00-abc-01"), *envelope().to_headers()]
    assert original_headers(headers) == [("traceparent", b"00-abc-01")]


def test_a_missing_header_is_an_error_not_a_guess() -> None:
    headers = [(name, value) for name, value in envelope().to_headers() if not name.endswith("reason")]
    with pytest.raises(ValidationError, match="reason"):
        DeadLetterV1.from_headers(headers)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", "Not A Code"),
        ("original_offset", -1),
        ("stage", ""),
        ("error_message", "x" * (MAX_MESSAGE_LENGTH + 1)),
    ],
)
def test_envelope_fields_are_validated(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        envelope(**{field: value})


def test_long_messages_are_truncated_to_fit() -> None:
    message = DeadLetterV1.truncate("x" * 10_000)
    assert len(message) == MAX_MESSAGE_LENGTH
    assert message.endswith("...")


def test_the_publisher_keeps_key_value_headers_and_timestamp() -> None:
    producer = RecordingProducer()
    published: list[str] = []
    record = RawRecord("transactions.raw", 1, 7, b"user-1", b"{oops", (("traceparent", b"t"),), 1_700_000_000_000)
    DeadLetterPublisher(producer, "ingestion", on_published=published.append).publish(
        [Rejected(record, RecordRejected("undecodable", "Invalid JSON"))]
    )
    [sent] = producer.sent
    assert sent["topic"] == "berg.dlq"
    assert (sent["key"], sent["value"], sent["timestamp_ms"]) == (b"user-1", b"{oops", 1_700_000_000_000)
    headers = sent["headers"]
    assert isinstance(headers, list)
    assert headers[0] == ("traceparent", b"t")
    restored = DeadLetterV1.from_headers(headers)
    assert (restored.original_topic, restored.original_partition, restored.original_offset) == (
        "transactions.raw",
        1,
        7,
    )
    assert published == ["undecodable"]
