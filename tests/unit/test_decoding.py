"""Decoding raw bytes: every failure becomes a reason code, never an exception that escapes."""

from __future__ import annotations

import uuid

import pytest

from berg.kafka.decoding import RecordRejected, decode_contract, split_batch
from berg.kafka.records import RawRecord
from berg_fraud.contracts import TransactionV1

pytestmark = pytest.mark.unit

VALID = (
    '{"event_id": "%s", "event_time": "2026-11-27T10:00:00Z", "user_id": "u1", "merchant_id": "m1",'
    ' "amount": 3.5, "merchant_category": "5411", "channel": "card_present", "country": "DE"}'
)


def record(value: bytes | None, offset: int = 0) -> RawRecord:
    return RawRecord("transactions.raw", 0, offset, b"u1", value, (), 0)


def valid_bytes() -> bytes:
    return (VALID % uuid.uuid4()).encode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty_value"),
        (b"", "empty_value"),
        (b"{not json", "undecodable"),
        (b"\xff\xfe\x00garbage", "undecodable"),
        (b"[1, 2, 3]", "contract_violation"),
        (b'{"amount": 3}', "contract_violation"),
    ],
)
def test_each_kind_of_bad_record_gets_its_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(RecordRejected) as raised:
        decode_contract(TransactionV1, record(value))
    assert raised.value.reason == reason


def test_the_reason_message_says_which_field_is_wrong() -> None:
    bad = valid_bytes().replace(b'"amount": 3.5', b'"amount": "lots"')
    with pytest.raises(RecordRejected, match="amount"):
        decode_contract(TransactionV1, record(bad))


def test_a_poison_record_does_not_hold_back_the_rest_of_the_batch() -> None:
    batch = [record(valid_bytes(), 0), record(b"{poison", 1), record(valid_bytes(), 2)]
    good, bad = split_batch(batch, lambda r: decode_contract(TransactionV1, r))
    assert [item.record.offset for item in good] == [0, 2]
    assert [(item.record.offset, item.error.reason) for item in bad] == [(1, "undecodable")]
