"""Row-level rules: each catches its bad value and names the right expectation, on both engines."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from services.validation.tests.helpers import (
    NOW,
    Engine,
    LabelFactory,
    TransactionFactory,
    labels_frame,
    transactions_frame,
)

from berg_fraud.contracts import MAX_AMOUNT

pytestmark = pytest.mark.unit

SKEW = timedelta(minutes=5)
"""The default allowed clock skew."""


def test_a_clean_batch_of_transactions_passes(engine: Engine, transaction: TransactionFactory) -> None:
    verdict = engine(transactions_frame([transaction() for _ in range(20)]), "transactions")
    assert verdict.passed
    assert verdict.row_failures == {}
    assert verdict.failure_counts
    assert set(verdict.failure_counts.values()) == {0}


def test_a_clean_batch_of_labels_passes(engine: Engine, label: LabelFactory) -> None:
    verdict = engine(labels_frame([label() for _ in range(20)]), "labels")
    assert verdict.passed


@pytest.mark.parametrize(
    ("override", "expectation"),
    [
        ({"amount": 0.0}, "expect_column_values_to_be_between(amount)"),
        ({"amount": -12.5}, "expect_column_values_to_be_between(amount)"),
        ({"amount": MAX_AMOUNT + 0.01}, "expect_column_values_to_be_between(amount)"),
        ({"currency": "XXX"}, "expect_column_values_to_be_in_set(currency)"),
        ({"merchant_category": "0000"}, "expect_column_values_to_be_in_set(merchant_category)"),
        ({"event_time": NOW + timedelta(days=3)}, "expect_column_values_to_be_between(event_time)"),
    ],
)
def test_a_bad_transaction_value_fails_its_rule_and_only_that_row(
    engine: Engine, transaction: TransactionFactory, override: dict[str, Any], expectation: str
) -> None:
    events = [transaction() for _ in range(6)]
    events[3] = transaction(**override)
    verdict = engine(transactions_frame(events), "transactions")
    assert verdict.row_failures == {3: (expectation,)}
    assert verdict.failure_counts[expectation] == 1
    assert not verdict.quarantined


def test_the_largest_amount_passes(engine: Engine, transaction: TransactionFactory) -> None:
    verdict = engine(transactions_frame([transaction(amount=MAX_AMOUNT), transaction(amount=0.01)]), "transactions")
    assert verdict.row_failures == {}


def test_an_unknown_channel_fails(engine: Engine, transaction: TransactionFactory) -> None:
    # The contract allows only the two channels; a frame built elsewhere might not.
    frame = transactions_frame([transaction() for _ in range(4)])
    frame.loc[1, "channel"] = "carrier_pigeon"
    verdict = engine(frame, "transactions")
    assert verdict.row_failures == {1: ("expect_column_values_to_be_in_set(channel)",)}


@pytest.mark.parametrize(
    ("column", "null"),
    [
        ("event_id", pd.NA),
        ("event_time", pd.NaT),
        ("user_id", pd.NA),
        ("merchant_id", pd.NA),
        ("amount", np.nan),
        ("currency", pd.NA),
        ("merchant_category", pd.NA),
        ("channel", pd.NA),
        ("country", pd.NA),
    ],
)
def test_a_null_fails_not_null_of_its_column(
    engine: Engine, transaction: TransactionFactory, column: str, null: Any
) -> None:
    frame = transactions_frame([transaction() for _ in range(5)])
    frame.loc[2, column] = null
    verdict = engine(frame, "transactions")
    assert verdict.row_failures == {2: (f"expect_column_values_to_not_be_null({column})",)}


def test_a_value_of_the_wrong_type_fails_the_type_rule_of_its_row(
    engine: Engine, transaction: TransactionFactory
) -> None:
    frame = transactions_frame([transaction() for _ in range(5)])
    frame["user_id"] = frame["user_id"].astype(object)
    frame.loc[4, "user_id"] = 12345
    verdict = engine(frame, "transactions")
    assert verdict.row_failures == {4: ("expect_column_values_to_be_of_type(user_id)",)}


def test_a_column_of_the_wrong_dtype_fails_the_whole_batch(engine: Engine, transaction: TransactionFactory) -> None:
    frame = transactions_frame([transaction(amount=float(n + 1)) for n in range(5)])
    frame["amount"] = frame["amount"].astype("int64")
    verdict = engine(frame, "transactions")
    assert verdict.batch_failures == ("expect_column_values_to_be_of_type(amount)",)
    assert verdict.quarantined


def test_a_row_breaking_several_rules_names_each(engine: Engine, transaction: TransactionFactory) -> None:
    events = [transaction(), transaction(amount=-1.0, currency="XXX", merchant_category="0000")]
    verdict = engine(transactions_frame(events), "transactions")
    assert verdict.failures_of(1) == (
        "expect_column_values_to_be_between(amount)",
        "expect_column_values_to_be_in_set(currency)",
        "expect_column_values_to_be_in_set(merchant_category)",
    )
    assert verdict.failures_of(0) == ()


def test_event_ids_must_be_unique_within_the_batch(engine: Engine, transaction: TransactionFactory) -> None:
    events = [transaction() for _ in range(5)]
    events[4] = transaction(event_id=events[1].event_id)
    verdict = engine(transactions_frame(events), "transactions")
    # Every copy fails: the batch cannot tell which one is the original.
    assert verdict.row_failures == {
        1: ("expect_column_values_to_be_unique(event_id)",),
        4: ("expect_column_values_to_be_unique(event_id)",),
    }
    assert verdict.failure_counts["expect_column_values_to_be_unique(event_id)"] == 2


def test_the_same_event_id_in_two_batches_is_not_a_failure(engine: Engine, transaction: TransactionFactory) -> None:
    first = transaction()
    again = transaction(event_id=first.event_id)
    assert engine(transactions_frame([first, transaction()]), "transactions").passed
    assert engine(transactions_frame([again, transaction()]), "transactions").passed


@pytest.mark.parametrize(
    ("offset", "fails"),
    [
        (timedelta(0), False),
        (SKEW - timedelta(seconds=1), False),
        (SKEW, False),
        (SKEW + timedelta(seconds=1), True),
        (timedelta(days=30), True),
    ],
)
def test_event_times_may_run_ahead_of_now_by_the_skew_only(
    engine: Engine, transaction: TransactionFactory, label: LabelFactory, offset: timedelta, fails: bool
) -> None:
    expectation = "expect_column_values_to_be_between(event_time)"
    transactions = transactions_frame([transaction(), transaction(event_time=NOW + offset)])
    labels = labels_frame([label(), label(event_time=NOW + offset)])
    for frame, kind in ((transactions, "transactions"), (labels, "labels")):
        verdict = engine(frame, kind)
        assert verdict.row_failures == ({1: (expectation,)} if fails else {}), kind


def test_the_skew_is_counted_from_the_batchs_now(engine: Engine, transaction: TransactionFactory) -> None:
    frame = transactions_frame([transaction(event_time=NOW + timedelta(hours=1))])
    assert not engine(frame, "transactions", now=NOW).passed
    assert engine(frame, "transactions", now=NOW + timedelta(hours=1)).passed


def test_an_unknown_label_source_fails(engine: Engine, label: LabelFactory) -> None:
    frame = labels_frame([label() for _ in range(3)])
    frame.loc[0, "source"] = "rumour"
    verdict = engine(frame, "labels")
    assert verdict.row_failures == {0: ("expect_column_values_to_be_in_set(source)",)}


def test_is_fraud_must_be_a_boolean(engine: Engine, label: LabelFactory) -> None:
    frame = labels_frame([label() for _ in range(3)])
    frame["is_fraud"] = frame["is_fraud"].astype(object)
    frame.loc[1, "is_fraud"] = "yes"
    frame.loc[2, "is_fraud"] = None
    verdict = engine(frame, "labels")
    assert verdict.row_failures == {
        1: ("expect_column_values_to_be_of_type(is_fraud)",),
        2: ("expect_column_values_to_not_be_null(is_fraud)",),
    }


def test_label_event_ids_must_be_unique_within_the_batch(engine: Engine, label: LabelFactory) -> None:
    events = [label(), label()]
    events.append(label(event_id=events[0].event_id))
    verdict = engine(labels_frame(events), "labels")
    assert set(verdict.row_failures) == {0, 2}


def test_an_empty_batch_passes(engine: Engine) -> None:
    verdict = engine(transactions_frame([]), "transactions")
    assert verdict.passed
    assert verdict.row_count == 0
    assert not verdict.batch_checked


def test_a_naive_now_is_refused(engine: Engine, transaction: TransactionFactory) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        engine(transactions_frame([transaction()]), "transactions", now=NOW.replace(tzinfo=None))


def test_a_frame_of_the_other_kind_is_refused(engine: Engine, label: LabelFactory) -> None:
    with pytest.raises(ValueError, match="columns"):
        engine(labels_frame([label()]), "transactions")
