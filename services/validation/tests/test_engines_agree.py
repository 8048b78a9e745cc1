"""GX and pandas give the same verdict, row by row, on random mixes of good and bad values.

Batches are small and the batch-level rules start at 20 rows here, so both row-
and batch-level rules are exercised; the knobs (amount scale, how many users,
share of card-not-present) push some batches over the batch-level bounds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from services.validation.tests.helpers import CATEGORIES, NOW, STREAMS, labels_frame, transactions_frame

from berg_fraud.contracts import MAX_AMOUNT, LabelV1, TransactionV1
from berg_fraud.rules import FraudBatchBounds, FraudRules
from berg_validation.pandas_rules import PandasRules
from berg_validation.suites import Suites, build_suites, create_context

pytestmark = pytest.mark.unit

RULES = FraudRules(batch=FraudBatchBounds(min_rows=20))

TRANSACTION_FAULTS = (
    "amount_zero",
    "amount_negative",
    "amount_too_large",
    "currency",
    "category",
    "future",
    "within_skew",
    "at_skew",
    "duplicate_id",
    "null",
    "wrong_type",
    "channel",
)
LABEL_FAULTS = ("future", "within_skew", "duplicate_id", "null", "wrong_type", "source")
STRING_COLUMNS = {
    "transactions": ("event_id", "user_id", "merchant_id", "currency", "merchant_category", "channel", "country"),
    "labels": ("event_id", "transaction_event_id", "user_id", "source"),
}
NULLABLE = {
    "transactions": (*STRING_COLUMNS["transactions"], "event_time", "amount"),
    "labels": (*STRING_COLUMNS["labels"], "event_time"),
}


@dataclass(frozen=True)
class Row:
    fault: str | None
    pick: int
    """Chooses among columns, earlier rows, users: any non-negative number."""
    amount: float


@dataclass(frozen=True)
class Batch:
    kind: str
    rows: list[Row]
    amount_scale: float
    users: int
    card_not_present_share: float


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    kind = draw(st.sampled_from(["transactions", "transactions", "labels"]))
    faults = TRANSACTION_FAULTS if kind == "transactions" else LABEL_FAULTS
    fault = st.one_of(st.none(), st.none(), st.none(), st.sampled_from(faults))
    row = st.builds(Row, fault, st.integers(0, 10_000), st.floats(0.5, 500.0))
    return Batch(
        kind=kind,
        rows=draw(st.lists(row, min_size=1, max_size=45)),
        amount_scale=draw(st.sampled_from([0.001, 1.0, 1.0, 1.0, 500.0])),
        users=draw(st.sampled_from([1, 2, 30, 30])),
        card_not_present_share=draw(st.sampled_from([0.0, 0.3, 0.3, 1.0])),
    )


def _transaction(batch: Batch, index: int, row: Row, earlier: list[uuid.UUID]) -> TransactionV1:
    fields: dict[str, Any] = {
        "event_id": uuid.UUID(int=(index + 1) * 7919 + row.pick, version=4),
        "event_time": NOW - timedelta(minutes=index),
        "user_id": f"user-{row.pick % batch.users}",
        "merchant_id": f"merchant-{row.pick % 13}",
        "amount": round(row.amount * batch.amount_scale, 4) or 0.01,
        "currency": "EUR",
        "merchant_category": CATEGORIES[row.pick % len(CATEGORIES)],
        "channel": "card_not_present" if (row.pick % 100) < batch.card_not_present_share * 100 else "card_present",
        "country": "FR",
    }
    fault = row.fault
    if fault == "amount_zero":
        fields["amount"] = 0.0
    elif fault == "amount_negative":
        fields["amount"] = -row.amount
    elif fault == "amount_too_large":
        fields["amount"] = MAX_AMOUNT + row.amount
    elif fault == "currency":
        fields["currency"] = "ZZZ"
    elif fault == "category":
        fields["merchant_category"] = "0001"
    elif fault in ("future", "within_skew", "at_skew"):
        fields["event_time"] = (
            NOW
            + {
                "future": timedelta(hours=1),
                "within_skew": timedelta(minutes=4),
                "at_skew": RULES.clock_skew,
            }[fault]
        )
    elif fault == "duplicate_id" and earlier:
        fields["event_id"] = earlier[row.pick % len(earlier)]
    return TransactionV1.model_validate(fields)


def _label(index: int, row: Row, earlier: list[uuid.UUID]) -> LabelV1:
    fields: dict[str, Any] = {
        "event_id": uuid.UUID(int=(index + 1) * 104_729 + row.pick, version=4),
        "event_time": NOW - timedelta(hours=index),
        "transaction_event_id": uuid.UUID(int=row.pick + 1, version=4),
        "user_id": f"user-{row.pick % 30}",
        "is_fraud": row.pick % 2 == 0,
        "source": ("chargeback", "customer_report", "manual_review")[row.pick % 3],
    }
    if row.fault in ("future", "within_skew"):
        fields["event_time"] = NOW + (timedelta(hours=1) if row.fault == "future" else timedelta(minutes=4))
    elif row.fault == "duplicate_id" and earlier:
        fields["event_id"] = earlier[row.pick % len(earlier)]
    return LabelV1.model_validate(fields)


def build(batch: Batch) -> pd.DataFrame:
    """The batch's frame, with the faults the contract would not let through put in afterwards."""
    earlier: list[uuid.UUID] = []
    events: list[Any] = []
    for index, row in enumerate(batch.rows):
        event = (
            _transaction(batch, index, row, earlier) if batch.kind == "transactions" else _label(index, row, earlier)
        )
        earlier.append(event.event_id)
        events.append(event)
    frame = transactions_frame(events) if batch.kind == "transactions" else labels_frame(events)
    for index, row in enumerate(batch.rows):
        if row.fault == "null":
            column = NULLABLE[batch.kind][row.pick % len(NULLABLE[batch.kind])]
            frame.loc[index, column] = None
        elif row.fault == "wrong_type":
            column = STRING_COLUMNS[batch.kind][row.pick % len(STRING_COLUMNS[batch.kind])]
            frame[column] = frame[column].astype(object)
            frame.loc[index, column] = row.pick
        elif row.fault == "channel":
            frame.loc[index, "channel"] = "telepathy"
        elif row.fault == "source":
            frame.loc[index, "source"] = "gossip"
    return frame


@pytest.fixture(scope="module")
def engines() -> tuple[Suites, PandasRules]:
    return build_suites(create_context(), STREAMS, RULES), PandasRules(STREAMS, RULES)


# GX takes ~0.1 s a batch: no deadline, and no shrinking (it would take minutes and
# run into the test timeout); a failing batch is small enough to read as drawn.
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(batch=batches())
def test_gx_and_pandas_agree_row_by_row(engines: tuple[Suites, PandasRules], batch: Batch) -> None:
    gx_suites, pandas_rules = engines
    frame = build(batch)
    kind: Any = batch.kind
    by_gx = gx_suites.validate(frame, kind, NOW)
    by_pandas = pandas_rules.validate(frame, kind, NOW)
    assert by_gx.errors == {}
    assert by_gx.row_failures == by_pandas.row_failures
    assert by_gx.batch_failures == by_pandas.batch_failures
    assert dict(by_gx.failure_counts) == dict(by_pandas.failure_counts)
    assert by_gx.batch_checked == by_pandas.batch_checked


def test_the_generator_reaches_both_levels(engines: tuple[Suites, PandasRules]) -> None:
    """The property above is only worth something if its batches fail rules of both levels."""
    gx_suites, _ = engines
    rows = [Row(None, pick, 40.0) for pick in range(30)]
    rows[4] = Row("currency", 4, 40.0)
    verdict = gx_suites.validate(build(Batch("transactions", rows, 1.0, 1, 0.3)), "transactions", NOW)
    assert verdict.row_failures == {4: ("expect_column_values_to_be_in_set(currency)",)}
    assert "expect_column_top_value_share_to_be_between(user_id)" in verdict.batch_failures
