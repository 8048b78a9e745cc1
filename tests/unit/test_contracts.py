"""The contracts: what they accept, and each kind of input they refuse."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from berg.contracts import LegacyPrediction, PredictionLogReader, PredictionV3
from berg.contracts.predictions import PredictionLogReaderError
from berg.kafka.decoding import RecordRejected, decode_contract
from berg.kafka.records import RawRecord
from berg_fraud.contracts import LabelV1, TransactionV1
from berg_fraud.predictions import PredictionV1, PredictionV2

pytestmark = pytest.mark.unit


def transaction(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_time": "2026-11-27T10:00:00+00:00",
        "user_id": "user-001",
        "merchant_id": "merchant-042",
        "amount": 12.5,
        "currency": "EUR",
        "merchant_category": "5411",
        "channel": "card_present",
        "country": "DE",
    }
    payload.update(overrides)
    return payload


def test_a_valid_transaction_round_trips_through_json() -> None:
    event = TransactionV1.model_validate(transaction())
    again = TransactionV1.model_validate_json(event.model_dump_json())
    assert again == event
    assert again.schema_version == 1


def test_timestamps_in_other_zones_are_normalised_to_utc() -> None:
    event = TransactionV1.model_validate(transaction(event_time="2026-11-27T12:00:00+02:00"))
    assert event.event_time == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert event.event_time.utcoffset() == timedelta(0)


PYDANTIC_DATETIME = TypeAdapter(AwareDatetime)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T10:00:00Z",
        "2026-11-27T12:00:00.5+02:00",
        "2026-11-27T05:00:00.123456-05:00",
        "2026-11-27 10:00:00Z",  # the forms below are read by pydantic, not by the fast path
        "2026-11-27T10:00Z",
        "2026-11-27t10:00:00z",
        "2026-11-27T10:00:00.1234567Z",
        "2026-11-27T10:00:00+0530",
    ],
)
def test_an_event_time_reads_as_pydantic_reads_it_in_utc(text: str) -> None:
    expected = PYDANTIC_DATETIME.validate_python(text).astimezone(UTC)
    for event in (
        TransactionV1.model_validate(transaction(event_time=text)),
        TransactionV1.model_validate_json(json.dumps(transaction(event_time=text))),
    ):
        assert event.event_time == expected
        assert event.event_time.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T10:00:00+01:60",  # datetime.fromisoformat reads all four; pydantic refuses them
        "2026-11-27X10:00:00Z",
        "20261127T100000Z",
        "2026-02-30T10:00:00Z",
    ],
)
def test_an_event_time_pydantic_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        PYDANTIC_DATETIME.validate_python(text)
    with pytest.raises(ValidationError) as raised:
        TransactionV1.model_validate_json(json.dumps(transaction(event_time=text)))
    assert raised.value.errors()[0]["loc"][0] == "event_time"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", float("nan")),
        ("amount", float("inf")),
        ("event_time", "2026-11-27T10:00:00"),  # naive: no zone
        ("event_time", "yesterday"),
        ("event_id", "not-a-uuid"),
        ("user_id", ""),
        ("user_id", "u" * 65),
        ("user_id", "has space"),
        ("currency", "euro"),
        ("country", "DEU"),
        ("merchant_category", "groceries"),
        ("channel", "telepathy"),
        ("schema_version", 2),
    ],
)
def test_a_transaction_refuses_each_kind_of_bad_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        TransactionV1.model_validate(transaction(**{field: value}))
    assert raised.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", True),
        ("amount", "12.5"),
        ("schema_version", True),
        ("event_time", 1772452800),
        ("event_time", "1772452800"),
    ],
)
def test_json_types_are_strict_from_python_and_from_json(field: str, value: object) -> None:
    """``true`` is not the amount 1.0, ``"12.5"`` not 12.5, a number not a time: on Kafka as at serving."""
    assert TransactionV1.model_validate_json(json.dumps(transaction(amount=12))).amount == 12.0  # an integer is
    with pytest.raises(ValidationError) as raised:
        TransactionV1.model_validate(transaction(**{field: value}))
    assert raised.value.errors()[0]["loc"][0] == field
    with pytest.raises(ValidationError) as raised:
        TransactionV1.model_validate_json(json.dumps(transaction(**{field: value})))
    assert raised.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize("amount", [0.0, -3.0, 10_000_000.0])
def test_amount_ranges_are_left_to_the_value_rules(amount: float) -> None:
    assert TransactionV1.model_validate(transaction(amount=amount)).amount == amount


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        TransactionV1.model_validate(transaction(tip=3.0))


def test_missing_fields_are_refused() -> None:
    payload = transaction()
    del payload["amount"]
    with pytest.raises(ValidationError, match="amount"):
        TransactionV1.model_validate(payload)


def test_nan_in_json_is_refused() -> None:
    raw = json.dumps(transaction()).replace("12.5", "NaN")
    with pytest.raises(ValidationError):
        TransactionV1.model_validate_json(raw)


def test_contracts_are_immutable() -> None:
    event = TransactionV1.model_validate(transaction())
    with pytest.raises(ValidationError):
        event.amount = 99.0  # type: ignore[misc]


def test_a_label_points_at_its_transaction() -> None:
    label = LabelV1(
        event_id=uuid.uuid4(),
        event_time=datetime(2026, 12, 3, tzinfo=timezone(timedelta(hours=1))),
        transaction_event_id=uuid.uuid4(),
        user_id="user-001",
        is_fraud=True,
    )
    assert label.source == "chargeback"
    assert label.event_time.tzinfo == UTC


@pytest.mark.parametrize("verdict", [1, 0, "yes", "true", "false", "0", None])
def test_a_verdict_is_a_json_boolean_from_python_and_from_json(verdict: object) -> None:
    """A feed that sends ``1``, ``"yes"`` or ``"0"`` gets a dead letter, not a verdict guessed from a string."""
    payload = {
        "event_id": str(uuid.uuid4()),
        "event_time": "2026-12-03T10:00:00Z",
        "transaction_event_id": str(uuid.uuid4()),
        "user_id": "user-001",
        "is_fraud": verdict,
    }
    with pytest.raises(ValidationError) as raised:
        LabelV1.model_validate(payload)
    assert raised.value.errors()[0]["loc"][0] == "is_fraud"
    with pytest.raises(ValidationError) as raised:
        LabelV1.model_validate_json(json.dumps(payload))
    assert raised.value.errors()[0]["loc"][0] == "is_fraud"
    assert LabelV1.model_validate_json(json.dumps({**payload, "is_fraud": False})).is_fraud is False


def prediction(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_time": "2026-11-27T10:00:01Z",
        "transaction_event_id": str(uuid.uuid4()),
        "user_id": "user-001",
        "merchant_id": "merchant-042",
        "model_name": "fraud",
        "model_version": "3",
        "features": {"amount": 12.5, "txn_count_1h": 2.0},
        "score": 0.12,
        "threshold": 0.5,
        "decision": "approve",
    }
    payload.update(overrides)
    return payload


def test_a_valid_prediction_is_accepted() -> None:
    assert PredictionV1.model_validate(prediction()).default_features_used is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("score", 1.5),
        ("score", float("nan")),
        ("threshold", -0.1),
        ("decision", "maybe"),
        ("features", {"amount": float("inf")}),
        ("features", {"Bad Name": 1.0}),
        ("features", {f"f{i}": 1.0 for i in range(300)}),
    ],
)
def test_a_prediction_refuses_each_kind_of_bad_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        PredictionV1.model_validate(prediction(**{field: value}))
    assert raised.value.errors()[0]["loc"][0] == field


def prediction_v2(**overrides: Any) -> dict[str, Any]:
    payload = prediction(schema_version=2, **overrides)
    del payload["event_time"]
    return {"transaction_event_time": "2026-01-03T08:00:00+01:00", "served_at": "2026-11-27T10:00:01Z", **payload}


def test_a_v2_prediction_carries_the_transactions_clock_and_the_servers() -> None:
    logged = PredictionV2.model_validate(prediction_v2())
    assert logged.transaction_event_time == datetime(2026, 1, 3, 7, tzinfo=UTC)
    assert logged.served_at == datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC)
    assert PredictionV2.model_validate_json(logged.model_dump_json()) == logged
    with pytest.raises(ValidationError, match="event_time"):
        PredictionV2.model_validate({**prediction_v2(), "event_time": "2026-11-27T10:00:01Z"})
    with pytest.raises(ValidationError, match="transaction_event_time"):
        PredictionV2.model_validate({k: v for k, v in prediction_v2().items() if k != "transaction_event_time"})


def prediction_v3(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "schema_version": 3,
        "event_id": str(uuid.uuid4()),
        "scored_event_id": str(uuid.uuid4()),
        "scored_event_time": "2026-01-03T08:00:00+01:00",
        "served_at": "2026-11-27T10:00:01Z",
        "entities": {"user_id": "u-17", "campaign_id": "c-3"},
        "model_name": "clicks",
        "model_version": "v0002",
        "features": {"bid": 1.25, "slot": 2.0},
        "score": 0.31,
        "threshold": 0.5,
        "decision": "approve",
        "default_features_used": True,
    }
    payload.update(overrides)
    return payload


def test_a_v3_prediction_names_its_scored_event_and_entities_and_round_trips() -> None:
    logged = PredictionV3.model_validate(prediction_v3())
    assert logged.scored_event_time == datetime(2026, 1, 3, 7, tzinfo=UTC)
    assert logged.served_at == datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC)
    assert logged.entities == {"user_id": "u-17", "campaign_id": "c-3"}
    assert PredictionV3.model_validate_json(logged.model_dump_json()) == logged
    assert PredictionLogReader().model_validate_json(logged.model_dump_json()) == logged


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("entities", {"User Id": "u-1"}),
        ("entities", {"user_id": ""}),
        ("entities", {"user_id": "u" * 129}),
        ("entities", {f"key_{i}": "v" for i in range(17)}),
        ("scored_event_time", "2026-01-03T08:00:00"),
        ("transaction_event_id", str(uuid.uuid4())),
        ("user_id", "u-17"),
    ],
)
def test_a_v3_prediction_refuses_unbounded_entities_naive_times_and_v2_fields(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        PredictionV3.model_validate(prediction_v3(**{field: value}))
    assert raised.value.errors()[0]["loc"][0] == field


FRAUD_LOG = (PredictionV1, PredictionV2)
"""The fraud case's legacy versions of the prediction log (what its descriptor declares)."""


@pytest.mark.parametrize(
    ("payload", "version"),
    [
        (prediction(), PredictionV1),
        ({k: v for k, v in prediction().items() if k != "schema_version"}, PredictionV1),
        (prediction_v2(), PredictionV2),
    ],
)
def test_a_legacy_prediction_reads_as_todays_version(
    payload: dict[str, Any], version: type[PredictionV1 | PredictionV2]
) -> None:
    decoded = PredictionLogReader(FRAUD_LOG).model_validate_json(json.dumps(payload))
    legacy = version.model_validate(payload)
    assert type(decoded) is PredictionV3
    assert decoded == legacy.upgraded()
    assert decoded.scored_event_id == legacy.transaction_event_id
    assert decoded.entities == {"user_id": "user-001", "merchant_id": "merchant-042"}
    assert (decoded.score, decoded.decision, decoded.features) == (legacy.score, legacy.decision, legacy.features)


def test_a_v1_prediction_stands_at_its_serving_time_and_a_v2_at_its_transactions() -> None:
    v1 = PredictionLogReader(FRAUD_LOG).model_validate_json(json.dumps(prediction()))
    assert v1.scored_event_time == v1.served_at == datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC)
    v2 = PredictionLogReader(FRAUD_LOG).model_validate_json(json.dumps(prediction_v2()))
    assert (v2.scored_event_time, v2.served_at) == (
        datetime(2026, 1, 3, 7, tzinfo=UTC),
        datetime(2026, 11, 27, 10, 0, 1, tzinfo=UTC),
    )


def test_todays_version_reads_as_itself_with_or_without_legacy_versions() -> None:
    payload = prediction_v3()
    for log in (PredictionLogReader(), PredictionLogReader(FRAUD_LOG)):
        assert log.model_validate_json(json.dumps(payload)) == PredictionV3.model_validate(payload)
    assert PredictionLogReader(FRAUD_LOG).versions == (1, 2, 3)


@pytest.mark.parametrize(
    "payload",
    [
        prediction(schema_version=4),
        prediction(schema_version=2),  # a v1 body under the v2 tag
        {**prediction_v2(), "schema_version": 1},  # and the other way round
        {**prediction_v2(), "schema_version": 3},  # a v2 body under the v3 tag
        prediction_v3(schema_version=2),  # and the other way round
        {**prediction_v2(), "score": float("nan")},
    ],
)
def test_a_logged_prediction_refuses_an_unknown_version_and_a_body_of_the_wrong_version(
    payload: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        PredictionLogReader(FRAUD_LOG).model_validate_json(json.dumps(payload))


@pytest.mark.parametrize("payload", [prediction(), prediction_v2()])
def test_a_use_case_without_legacy_versions_dead_letters_them_as_contract_violations(payload: dict[str, Any]) -> None:
    record = RawRecord("predictions", 0, 7, None, json.dumps(payload).encode(), (), 0)
    with pytest.raises(RecordRejected) as raised:
        decode_contract(PredictionLogReader(), record)
    assert raised.value.reason == "contract_violation"
    assert raised.value.message.startswith("PredictionLogReader: ")


class ClashingV2(LegacyPrediction):
    schema_version: int = 2

    def upgraded(self) -> PredictionV3:
        raise NotImplementedError


class ClaimsToday(ClashingV2):
    schema_version: int = 3


def test_a_prediction_log_refuses_legacy_versions_it_could_not_tell_apart() -> None:
    with pytest.raises(PredictionLogReaderError, match="both declare version 2"):
        PredictionLogReader((PredictionV2, ClashingV2))
    with pytest.raises(PredictionLogReaderError, match=r"ClaimsToday: .*below 3"):
        PredictionLogReader((ClaimsToday,))


def test_a_timestamp_with_no_utc_equivalent_is_a_validation_error_not_a_crash() -> None:
    import json

    import pydantic

    from berg_fraud.contracts import TransactionV1

    body = {
        "event_id": "00000000-0000-0000-0000-000000000001",
        "event_time": "0001-01-01T00:00:00+05:00",
        "user_id": "u1",
        "merchant_id": "m1",
        "amount": 1.0,
        "merchant_category": "5411",
        "channel": "card_present",
        "country": "DE",
    }
    with pytest.raises(pydantic.ValidationError, match="outside the range of UTC datetimes"):
        TransactionV1.model_validate_json(json.dumps(body))
