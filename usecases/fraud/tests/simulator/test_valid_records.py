"""Every valid record decodes as its contract, keyed by its user, with known categories and positive amounts."""

from __future__ import annotations

import pytest
from usecases.fraud.tests.simulator.streams import run

from berg.kafka.decoding import decode_contract
from berg.kafka.records import RawRecord
from berg.simulator.traffic import MALFORMED_CLASS_HEADER, SCENARIO_HEADER
from berg_fraud.contracts import LabelV1, TransactionV1
from berg_fraud.simulator.profiles import KNOWN_MERCHANT_CATEGORIES
from berg_fraud.simulator.scenarios import SCENARIO_NAMES, ScenarioName
from berg_fraud.topics import LABELS_RAW, TRANSACTIONS_RAW

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_every_valid_record_decodes_as_its_contract(scenario: ScenarioName) -> None:
    for event in run(scenario):
        if event.kind == "malformed":
            continue
        record = RawRecord(event.topic, 0, 0, event.key, event.value, event.headers, 0)
        assert MALFORMED_CLASS_HEADER not in dict(event.headers)
        assert SCENARIO_HEADER in dict(event.headers)
        if event.kind == "scored":
            assert event.topic == TRANSACTIONS_RAW
            transaction = decode_contract(TransactionV1, record)
            assert event.key == transaction.user_id.encode()
            assert transaction.event_time == event.event_time
            assert str(transaction.event_id) == event.truth.subject_id
            assert transaction.merchant_category in KNOWN_MERCHANT_CATEGORIES
            assert 0 < transaction.amount <= 1_000_000
        else:
            assert event.topic == LABELS_RAW
            label = decode_contract(LabelV1, record)
            assert event.key == label.user_id.encode()
            assert label.event_time == event.event_time
            assert str(label.transaction_event_id) == event.truth.subject_id
