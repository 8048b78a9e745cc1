"""Frames: one row per event, in order, on a positional index, with the dtypes the rules expect."""

from __future__ import annotations

import pandas as pd
import pytest
from services.validation.tests.helpers import STREAM, LabelFactory, TransactionFactory, labels_frame, transactions_frame

from berg_validation.frames import build_frame, column_types

pytestmark = pytest.mark.unit


def test_a_transactions_frame_keeps_order_values_and_dtypes(transaction: TransactionFactory) -> None:
    events = [transaction(amount=amount) for amount in (3.5, 1.25, 900.0)]
    frame = transactions_frame(events)
    assert list(frame.columns) == list(column_types(STREAM["transactions"].contract))
    assert frame.index.equals(pd.RangeIndex(3))
    assert frame["amount"].tolist() == [3.5, 1.25, 900.0]
    assert frame["event_id"].tolist() == [str(event.event_id) for event in events]
    assert frame["amount"].dtype == "float64"
    assert str(frame["event_time"].dtype) == "datetime64[ns, UTC]"
    assert frame["event_time"].tolist() == [event.event_time for event in events]
    assert frame["user_id"].dtype == pd.StringDtype("python")


def test_a_labels_frame_has_a_boolean_is_fraud(label: LabelFactory) -> None:
    frame = labels_frame([label(is_fraud=True), label(is_fraud=False)])
    assert list(frame.columns) == list(column_types(STREAM["labels"].contract))
    assert frame["is_fraud"].dtype == bool
    assert frame["is_fraud"].tolist() == [True, False]
    assert frame["transaction_event_id"].dtype == pd.StringDtype("python")


def test_an_empty_batch_keeps_its_dtypes() -> None:
    frame = transactions_frame([])
    assert len(frame) == 0
    assert str(frame["event_time"].dtype) == "datetime64[ns, UTC]"
    assert frame["amount"].dtype == "float64"


def test_build_frame_checks_the_kind(transaction: TransactionFactory, label: LabelFactory) -> None:
    assert len(build_frame(STREAM["transactions"], [transaction(), transaction()])) == 2
    assert len(build_frame(STREAM["labels"], [label()])) == 1
    with pytest.raises(TypeError, match="event 1 is a LabelV1"):
        build_frame(STREAM["transactions"], [transaction(), label()])
