"""Malformed records: their share, their headers, and that each class is refused by the stage its table names."""

from __future__ import annotations

import collections
import json
from datetime import UTC, datetime, timedelta

import pytest
from usecases.fraud.tests.simulator.streams import ONSET, START, config, of_kind, run

from berg.kafka.decoding import RecordRejected, decode_contract
from berg.kafka.records import RawRecord
from berg.simulator.traffic import MALFORMED_CLASS_HEADER, SCENARIO_HEADER, SimulatedEvent
from berg_app.simulator.bounds import bounded
from berg_fraud.contracts import TransactionV1
from berg_fraud.simulator.generator import SimulationConfig, simulate
from berg_fraud.simulator.malformed import (
    MALFORMED_CLASS_NAMES,
    MALFORMED_CLASSES,
    MalformedOptions,
    classes_refused_by,
    future_timestamp,
    nan_or_infinity,
    non_utf8,
    oversized,
)
from berg_fraud.simulator.profiles import KNOWN_MERCHANT_CATEGORIES
from berg_fraud.simulator.scenarios import make_scenario
from berg_fraud.topics import TRANSACTIONS_RAW

pytestmark = pytest.mark.unit

ONE_MIB = 1024 * 1024
INGESTION_DECODE_CLASSES = [name for name in classes_refused_by("ingestion") if name != "oversized"]


def raw(value: bytes) -> RawRecord:
    return RawRecord(TRANSACTIONS_RAW, 0, 0, b"user-00001", value, (), 0)


def sample_transactions(count: int = 200) -> list[TransactionV1]:
    return [TransactionV1.model_validate_json(e.value) for e in of_kind(run(), "scored")[:count]]


def test_the_table_names_every_class_and_the_stage_that_refuses_it() -> None:
    assert set(MALFORMED_CLASS_NAMES) == {
        "non_utf8",
        "invalid_json",
        "not_an_object",
        "missing_field",
        "wrong_type",
        "nan_or_infinity",
        "unparsable_timestamp",
        "future_timestamp",
        "oversized",
        "unknown_field",
        "negative_amount",
        "unknown_category",
    }
    assert set(classes_refused_by("validation")) == {"future_timestamp", "negative_amount", "unknown_category"}
    assert set(classes_refused_by("ingestion")) == set(MALFORMED_CLASS_NAMES) - set(classes_refused_by("validation"))
    assert MALFORMED_CLASSES["oversized"].reason == "record_too_large"
    for name, spec in MALFORMED_CLASSES.items():
        assert spec.name == name
        assert (spec.reason is None) == (spec.stage == "validation")


@pytest.mark.parametrize("name", INGESTION_DECODE_CLASSES)
def test_ingestion_classes_cannot_be_decoded_against_the_contract(name: str) -> None:
    spec = MALFORMED_CLASSES[name]
    for transaction in sample_transactions():
        with pytest.raises(RecordRejected) as rejected:
            decode_contract(TransactionV1, raw(spec.corrupt(transaction)))
        assert rejected.value.reason == spec.reason, rejected.value.message


def test_oversized_records_are_over_one_mib_and_would_not_decode_either() -> None:
    transaction = sample_transactions(1)[0]
    record = oversized(transaction)
    assert len(record) > ONE_MIB
    assert json.loads(record)["event_id"] == str(transaction.event_id)
    with pytest.raises(RecordRejected) as rejected:
        decode_contract(TransactionV1, raw(record))
    assert rejected.value.reason == "contract_violation"
    assert len(oversized(transaction, MalformedOptions(oversized_bytes=5_000))) >= 5_000


@pytest.mark.parametrize("name", classes_refused_by("validation"))
def test_validation_classes_decode_but_break_a_semantic_rule(name: str) -> None:
    reference = datetime(2030, 1, 1, tzinfo=UTC)
    options = MalformedOptions(future_reference=reference)
    for transaction in sample_transactions():
        decoded = decode_contract(TransactionV1, raw(MALFORMED_CLASSES[name].corrupt(transaction, options)))
        assert decoded.event_id == transaction.event_id
        if name == "future_timestamp":
            assert decoded.event_time >= reference + timedelta(days=30)
        elif name == "negative_amount":
            assert decoded.amount < 0
        else:
            assert decoded.merchant_category not in KNOWN_MERCHANT_CATEGORIES
            assert len(decoded.merchant_category) == 4


def test_future_timestamps_without_a_reference_lie_thirty_days_after_the_event() -> None:
    transaction = sample_transactions(1)[0]
    decoded = TransactionV1.model_validate_json(future_timestamp(transaction))
    assert decoded.event_time == transaction.event_time + timedelta(days=30)


def test_the_byte_level_classes_look_like_their_names() -> None:
    transaction = sample_transactions(1)[0]
    with pytest.raises(UnicodeDecodeError):
        non_utf8(transaction).decode("utf-8")
    tokens = {b"NaN" in nan_or_infinity(t) or b"Infinity" in nan_or_infinity(t) for t in sample_transactions(20)}
    assert tokens == {True}


def test_the_malformed_share_is_respected_after_the_onset_and_zero_before() -> None:
    events = run("malformed")
    before = [e for e in events if e.event_time < ONSET and e.kind != "label"]
    after = [e for e in events if e.event_time >= ONSET and e.kind != "label"]
    assert not [e for e in before if e.kind == "malformed"]
    share = sum(e.kind == "malformed" for e in after) / len(after)
    assert 0.035 < share < 0.065


def test_a_large_share_is_respected_too() -> None:
    events = list(bounded(simulate(config("malformed", malformed_share=0.3)), max_scored=8_000))
    after = [e for e in events if e.event_time >= ONSET and e.kind != "label"]
    share = sum(e.kind == "malformed" for e in after) / len(after)
    assert 0.26 < share < 0.34


def test_by_default_every_class_appears() -> None:
    classes = collections.Counter(e.truth.malformed_class for e in of_kind(run("malformed"), "malformed"))
    assert set(classes) == set(MALFORMED_CLASS_NAMES)
    assert min(classes.values()) >= 5


def test_a_class_mix_limits_the_classes() -> None:
    scenario = make_scenario("malformed", START, malformed_share=0.2, malformed_mix={"negative_amount": 1.0})
    events = list(bounded(simulate(SimulationConfig(start=START, scenario=scenario, users=50)), max_scored=500))
    classes = {e.truth.malformed_class for e in of_kind(events, "malformed")}
    assert classes == {"negative_amount"}


def test_an_unknown_class_in_the_mix_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown malformed classes"):
        make_scenario("malformed", START, malformed_mix={"no_such_class": 1.0})


def decode_outcome(event: SimulatedEvent) -> str:
    try:
        decode_contract(TransactionV1, raw(event.value))
    except RecordRejected as error:
        return error.reason
    return "decoded"


def test_every_malformed_record_of_the_stream_behaves_as_its_class_says() -> None:
    malformed = of_kind(run("malformed"), "malformed")
    for event in malformed:
        name = event.truth.malformed_class
        assert name is not None
        headers = dict(event.headers)
        assert headers[MALFORMED_CLASS_HEADER] == name.encode()
        assert headers[SCENARIO_HEADER] == b"malformed"
        assert event.topic == TRANSACTIONS_RAW
        assert event.key.startswith(b"user-")
        spec = MALFORMED_CLASSES[name]
        if spec.stage == "validation":
            assert decode_outcome(event) == "decoded"
        elif name != "oversized":
            assert decode_outcome(event) == spec.reason


def test_a_malformed_record_replaces_its_transaction_and_is_never_labelled() -> None:
    events = run("malformed")
    replaced = {e.truth.subject_id for e in of_kind(events, "malformed")}
    valid = {e.truth.subject_id for e in of_kind(events, "scored")}
    labelled = {e.truth.subject_id for e in of_kind(events, "label")}
    assert replaced
    assert not replaced & valid
    assert not replaced & labelled


def test_the_transactions_that_are_not_replaced_are_the_baselines() -> None:
    baseline = {e.value for e in of_kind(run("baseline"), "scored")}
    kept = of_kind(run("malformed"), "scored")
    assert len(kept) > 10_000
    assert all(e.value in baseline for e in kept)
