"""The feature vector at scoring time: stored values, on-demand features, NaN defaults and the TTLs of training."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from services.serving.tests.helpers import NOW, transaction

from berg_serving.features import FeatureFrame, MissingFeaturesError, feature_matrix
from tests.fraud_schema import (
    DEFAULT_ALLOWED_LATENESS,
    MERCHANT_AS_OF,
    MERCHANT_AVAILABLE,
    MERCHANT_FEATURES,
    ON_DEMAND_FEATURES,
    USER_FEATURES,
)
from tests.fraud_serving import ASSEMBLER, SERVABLE_FEATURES

pytestmark = pytest.mark.unit

T = NOW.timestamp()


def user_row(last_unix: float = T - 600, mean_7d: float = 20.0) -> dict[str, Any]:
    row: dict[str, Any] = {spec.name: 3 if spec.kind == "int" else 1.5 for spec in USER_FEATURES}
    row.update(amount_mean_7d=mean_7d, last_transaction_unix=last_unix)
    return row


def merchant_row(snapshot_unix: float = T - 5400, available_unix: float | None = None) -> dict[str, Any]:
    """A snapshot at ``snapshot_unix``, available from ``available_unix`` (default: the allowed lateness later)."""
    row: dict[str, Any] = {spec.name: 7 if spec.kind == "int" else 0.25 for spec in MERCHANT_FEATURES}
    if available_unix is None:
        available_unix = snapshot_unix + DEFAULT_ALLOWED_LATENESS.total_seconds()
    row.update({MERCHANT_AS_OF: snapshot_unix, MERCHANT_AVAILABLE: available_unix})
    return row


def online(*rows: tuple[dict[str, Any] | None, dict[str, Any] | None]) -> dict[str, list[Any]]:
    """Feast's to_dict() for entity rows whose user and merchant rows are given (None: not in the store)."""
    values: dict[str, list[Any]] = {}
    for specs, side in ((USER_FEATURES, 0), (MERCHANT_FEATURES, 1)):
        for spec in specs:
            values[spec.name] = [None if pair[side] is None else pair[side][spec.name] for pair in rows]
    return values


def test_known_user_and_merchant() -> None:
    frame = ASSEMBLER.assemble([transaction(amount=50.0)], online((user_row(), merchant_row())))
    assert list(frame.columns) == list(SERVABLE_FEATURES)
    assert frame.columns["tx_count_1h"][0] == 3
    assert frame.columns["merchant_fraud_rate_30d"][0] == 0.25
    assert frame.columns["amount"][0] == 50.0
    assert frame.columns["amount_to_user_mean_7d"][0] == pytest.approx(2.5)
    assert frame.columns["hour_of_day"][0] == NOW.hour
    assert frame.columns["seconds_since_previous_transaction"][0] == pytest.approx(600)
    assert not frame.default_features_used[0]


def test_unknown_user_gets_nan_defaults_and_is_flagged() -> None:
    frame = ASSEMBLER.assemble([transaction()], online((None, merchant_row())))
    user_features = [spec.name for spec in USER_FEATURES if spec.name in SERVABLE_FEATURES]
    assert all(math.isnan(frame.columns[name][0]) for name in user_features)
    assert math.isnan(frame.columns["amount_to_user_mean_7d"][0])
    assert math.isnan(frame.columns["seconds_since_previous_transaction"][0])
    assert frame.columns["hour_of_day"][0] == NOW.hour
    assert frame.columns["merchant_tx_count_24h"][0] == 7
    assert frame.default_features_used[0]
    assert (frame.known["user"][0], frame.known["merchant"][0]) == (False, True)


@pytest.mark.parametrize(
    ("user", "merchant", "user_known", "merchant_known"),
    [
        (user_row(last_unix=T - timedelta(days=7).total_seconds()), merchant_row(), True, True),
        (user_row(last_unix=T - timedelta(days=7, seconds=1).total_seconds()), merchant_row(), False, True),
        # A snapshot's TTL counts from when it became available (stored with it), not from its time.
        (user_row(), merchant_row(available_unix=T - timedelta(days=2).total_seconds()), True, True),
        (user_row(), merchant_row(available_unix=T - timedelta(days=2, seconds=1).total_seconds()), True, False),
        (user_row(), None, True, False),
    ],
)
def test_rows_count_within_their_view_ttl_as_in_training(
    user: dict[str, Any], merchant: dict[str, Any] | None, user_known: bool, merchant_known: bool
) -> None:
    frame = ASSEMBLER.assemble([transaction()], online((user, merchant)))
    assert (frame.known["user"][0], frame.known["merchant"][0]) == (user_known, merchant_known)
    assert math.isnan(frame.columns["tx_count_7d"][0]) != user_known
    assert math.isnan(frame.columns["merchant_tx_count_24h"][0]) != merchant_known
    assert frame.default_features_used[0] == (not (user_known and merchant_known))


def test_the_merchant_ttl_counts_from_when_the_snapshot_was_available() -> None:
    # A snapshot 2 days and 3 hours old that the slowest partition made available 2 hours after its time
    # (later than its time plus the lateness) is still within the TTL; without its availability, unknown.
    snapshot_unix = T - timedelta(days=2, hours=3).total_seconds()
    available = merchant_row(snapshot_unix, available_unix=snapshot_unix + timedelta(hours=3).total_seconds())
    assert ASSEMBLER.assemble([transaction()], online((user_row(), available))).known["merchant"][0]
    late = merchant_row(snapshot_unix, available_unix=snapshot_unix + timedelta(hours=2, minutes=59).total_seconds())
    assert not ASSEMBLER.assemble([transaction()], online((user_row(), late))).known["merchant"][0]
    unstamped = {**available, MERCHANT_AVAILABLE: None}
    assert not ASSEMBLER.assemble([transaction()], online((user_row(), unstamped))).known["merchant"][0]


def test_neither_as_of_column_is_a_model_feature() -> None:
    assert MERCHANT_AS_OF not in SERVABLE_FEATURES
    assert MERCHANT_AVAILABLE not in SERVABLE_FEATURES


def test_a_batch_keeps_its_order() -> None:
    batch = [transaction(user_id="a", amount=10.0), transaction(user_id="b", amount=20.0)]
    assert ASSEMBLER.entity_rows(batch) == [
        {"user_id": "a", "merchant_id": "merchant-0001"},
        {"user_id": "b", "merchant_id": "merchant-0001"},
    ]
    frame = ASSEMBLER.assemble(batch, online((None, None), (user_row(mean_7d=10.0), merchant_row())))
    assert frame.default_features_used.tolist() == [True, False]
    assert frame.columns["amount"].tolist() == [10.0, 20.0]
    assert math.isnan(frame.columns["amount_to_user_mean_7d"][0])
    assert frame.columns["amount_to_user_mean_7d"][1] == pytest.approx(2.0)


def test_online_values_must_match_the_batch() -> None:
    with pytest.raises(ValueError, match="2 values for 1 events"):
        ASSEMBLER.assemble([transaction()], online((None, None), (None, None)))


def test_matrix_in_model_order_float32_nan_and_clipped() -> None:
    frame = ASSEMBLER.assemble([transaction(amount=1e300)], online((None, merchant_row())))
    order = ["amount", "merchant_tx_count_24h", "tx_count_1h", "hour_of_day"]
    matrix = frame.matrix(order)
    assert matrix.dtype == np.float32
    assert matrix.shape == (1, 4)
    assert matrix[0, 0] == np.finfo(np.float32).max
    assert matrix[0, 1] == 7
    assert math.isnan(matrix[0, 2])
    with pytest.raises(MissingFeaturesError, match="not_a_feature"):
        frame.matrix(["amount", "not_a_feature"])


def test_feature_matrix_from_named_columns() -> None:
    columns = {"b": np.array([1.0, np.nan]), "a": np.array([3.0, 4.0])}
    assert feature_matrix(columns, ["a", "b"]).tolist()[0] == [3.0, 1.0]


def test_row_for_the_log_leaves_missing_features_out() -> None:
    frame = ASSEMBLER.assemble([transaction()], online((None, merchant_row())))
    row = frame.row(0)
    assert "tx_count_1h" not in row
    assert row["merchant_tx_count_24h"] == 7.0
    assert all(math.isfinite(value) for value in row.values())
    assert set(row) <= set(SERVABLE_FEATURES)
    assert {spec.name for spec in ON_DEMAND_FEATURES} & set(row) == {"hour_of_day"}


def test_frame_length() -> None:
    frame = FeatureFrame(columns={}, known={"user": np.array([True]), "merchant": np.array([False])})
    assert len(frame) == 1
    assert frame.default_features_used.tolist() == [True]
    # A feature set of request features alone has no entity: its columns give the length, nothing defaulted.
    request_only = FeatureFrame(columns={"amount": np.array([1.0, 2.0])}, known={})
    assert len(request_only) == 2
    assert request_only.default_features_used.tolist() == [False, False]
