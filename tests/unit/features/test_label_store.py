"""The label store's notes of what arrived: one per append, spans per event date, gone once acknowledged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fraud_schema import fraud_label_store

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 22, tzinfo=UTC)


def transaction(at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_time": at,
        "user_id": "u1",
        "merchant_id": "m1",
        "amount": 1.0,
        "currency": "EUR",
        "merchant_category": "5411",
        "channel": "card_present",
        "country": "DE",
        "source_partition": 0,
        "source_offset": 0,
    }


def test_each_append_leaves_a_note_of_its_event_times_per_date_until_acknowledged(tmp_path: Path) -> None:
    store = fraud_label_store(str(tmp_path))
    assert store.arrivals() == []
    times = [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=3), T0 - timedelta(days=40)]
    store.append("transactions", [transaction(at) for at in times])
    (arrival,) = store.arrivals()
    assert arrival.kind == "transactions"
    assert sorted(arrival.spans) == [
        (T0 - timedelta(days=40), T0 - timedelta(days=40)),
        (T0, T0 + timedelta(hours=1)),
        (T0 + timedelta(hours=3), T0 + timedelta(hours=3)),
    ]
    # The rows a note names are there whenever the note is.
    assert len(store.read("transactions", start=arrival.spans[0][0])) == 4

    store.append("labels", [])
    store.append(
        "labels",
        [
            {
                "event_id": "l1",
                "event_time": T0,
                "transaction_event_id": "t1",
                "user_id": "u1",
                "is_fraud": True,
                "source": "chargeback",
            }
        ],
    )
    arrivals = store.arrivals()
    assert sorted(a.kind for a in arrivals) == ["labels", "transactions"]
    store.acknowledge(arrivals)
    assert store.arrivals() == []
    store.acknowledge(arrivals)  # twice is harmless
    assert store.earliest_event_date("transactions") == (T0 - timedelta(days=40)).date()
