"""Scoring requests of the fraud contract in both protocols: what it accepts passes, the rest a clear RequestError."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from services.serving.tests.helpers import NOW, Tensor, tensors, transaction_fields

from berg_fraud.contracts import TransactionV1
from berg_fraud.rules import FraudRules
from berg_serving.scoring_request import RequestError, ScoringContract

pytestmark = pytest.mark.unit

RULES = FraudRules()
SCORED = RULES.value_rules("transactions")
REQUEST = ScoringContract(TransactionV1)


def test_v1_instances_become_transactions() -> None:
    rows = [transaction_fields(), transaction_fields(user_id="user-00002", amount=3)]
    parsed = REQUEST.parse_v1({"instances": rows}, max_batch=10, rules=SCORED, now=NOW)
    assert parsed == [TransactionV1.model_validate(row) for row in rows]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([transaction_fields()], "expected a JSON object"),
        ({"inputs": [transaction_fields()]}, "unknown field(s) ['inputs']"),
        ({"instances": transaction_fields()}, '"instances" must be a list'),
        ({"instances": []}, "is empty"),
        ({"instances": [transaction_fields()] * 3}, "at most 2 per request"),
        ({"instances": ["a transaction"]}, "instances[0] must be a JSON object"),
        (
            {"instances": [transaction_fields(amount=float("nan"))]},
            "instances[0]: amount: Input should be a finite number",
        ),
        ({"instances": [transaction_fields(amount="a lot")]}, "instances[0]: amount"),
        ({"instances": [{**transaction_fields(), "tip": 1}]}, "instances[0]: tip: Extra inputs are not permitted"),
        (
            {"instances": [transaction_fields(event_time="2026-03-02T12:00:00")]},
            "event_time: Input should have timezone",
        ),
        (
            {"instances": [transaction_fields(event_time="0001-01-01T00:00:00+05:00")]},
            "outside the range of UTC datetimes",
        ),
        ({"instances": [transaction_fields(user_id="has space")]}, "user_id: String should match pattern"),
    ],
)
def test_v1_refusals_say_what_is_wrong(body: object, message: str) -> None:
    with pytest.raises(RequestError) as refused:
        REQUEST.parse_v1(body, max_batch=2, rules=SCORED, now=NOW)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": True}, "instances[0]: amount: Input should be a valid number"),
        ({"amount": "12.5"}, "instances[0]: amount: Input should be a valid number"),
        ({"amount": -5.0}, "instances[0]: amount: must be above 0"),
        ({"amount": 0}, "instances[0]: amount: must be above 0"),
        ({"amount": RULES.max_amount * 1.5}, "instances[0]: amount: must be above 0 and at most 1000000"),
        (
            {"event_time": "2030-01-01T00:00:00Z"},
            "instances[0]: event_time: 2030-01-01T00:00:00+00:00 is in the future",
        ),
        ({"event_time": 1772452800}, "instances[0]: event_time: Value error, must be an ISO 8601 date"),
        ({"event_time": "1772452800"}, "instances[0]: event_time: Value error, must be an ISO 8601 date"),
        ({"currency": "XXX"}, "instances[0]: currency: 'XXX' is not one of the known values"),
        ({"merchant_category": "0000"}, "instances[0]: merchant_category: '0000' is not one of the known values"),
        ({"schema_version": True}, "instances[0]: schema_version: Value error, must be the number 1"),
    ],
)
def test_v1_is_strictly_typed_and_refuses_what_validation_would(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError) as refused:
        REQUEST.parse_v1({"instances": [transaction_fields(**fields)]}, max_batch=2, rules=SCORED, now=NOW)
    assert message in str(refused.value)


def test_the_event_time_may_lead_the_server_clock_by_the_skew_and_no_more() -> None:
    bound = transaction_fields(event_time=(NOW + RULES.clock_skew).isoformat())
    assert (
        REQUEST.parse_v1({"instances": [bound]}, max_batch=1, rules=SCORED, now=NOW)[0].event_time
        == NOW + RULES.clock_skew
    )
    with pytest.raises(RequestError, match=r"instances\[0\]: event_time: .* is in the future"):
        REQUEST.parse_v1({"instances": [bound]}, max_batch=1, rules=SCORED, now=NOW - timedelta(microseconds=1))
    tighter = FraudRules(clock_skew_s=0)
    with pytest.raises(RequestError, match="in the future"):
        REQUEST.parse_v1({"instances": [bound]}, max_batch=1, rules=tighter.value_rules("transactions"), now=NOW)


def test_the_settings_of_the_rules_apply() -> None:
    rules = FraudRules(max_amount=100.0, currencies=frozenset({"USD"}), merchant_categories=frozenset({"5411"}))
    with pytest.raises(RequestError) as refused:
        REQUEST.parse_v1(
            {"instances": [transaction_fields(amount=100.5)]},
            max_batch=1,
            rules=rules.value_rules("transactions"),
            now=NOW,
        )
    assert "amount: must be above 0 and at most 100," in str(refused.value)
    assert "currency: 'EUR' is not one of the known values (USD)" in str(refused.value)
    assert REQUEST.parse_v1(
        {"instances": [transaction_fields(amount=100.0, currency="USD")]},
        max_batch=1,
        rules=rules.value_rules("transactions"),
        now=NOW,
    )


def test_an_event_id_twice_in_one_request_is_refused_in_both_rows() -> None:
    twice = transaction_fields()
    with pytest.raises(RequestError, match=r"instances\[0\]: event_id: .* appears 2 times.*instances\[2\]: event_id"):
        REQUEST.parse_v1({"instances": [twice, transaction_fields(), twice]}, max_batch=3, rules=SCORED, now=NOW)


def test_v1_missing_fields_are_named() -> None:
    fields = transaction_fields()
    del fields["merchant_id"], fields["country"]
    with pytest.raises(RequestError, match=r"instances\[0\]: merchant_id: Field required.*country: Field required"):
        REQUEST.parse_v1({"instances": [fields]}, max_batch=2, rules=SCORED, now=NOW)


def test_v2_tensors_become_transactions_and_currency_is_optional() -> None:
    rows = [transaction_fields(), transaction_fields(amount=7.25)]
    for row in rows:
        del row["currency"]
    parsed = REQUEST.parse_v2(tensors(rows), max_batch=10, rules=SCORED, now=NOW)
    assert parsed == [TransactionV1.model_validate(row) for row in rows]
    assert {t.currency for t in parsed} == {"EUR"}


def test_v2_accepts_bytes_and_column_shapes() -> None:
    rows = [transaction_fields()]
    inputs = [
        Tensor(t.name, t.datatype, [v.encode() if isinstance(v, str) else v for v in t.data], shape=[1, 1])
        for t in tensors(rows)
    ]
    assert REQUEST.parse_v2(inputs, max_batch=1, rules=SCORED, now=NOW) == [TransactionV1.model_validate(rows[0])]


def _with(rows: list[dict[str, Any]], name: str, tensor: Tensor | None) -> list[Tensor]:
    inputs = [t for t in tensors(rows) if t.name != name]
    return inputs if tensor is None else [*inputs, tensor]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: _with(rows, "tip", Tensor("tip", "FP64", [1.0])), "unknown input tensor(s) ['tip']"),
        (lambda rows: _with(rows, "user_id", None), "missing input tensor(s) ['user_id']"),
        (lambda rows: [*tensors(rows), tensors(rows)[0]], "given more than once"),
        (lambda rows: _with(rows, "amount", Tensor("amount", "BYTES", ["12"])), "'amount' must be FP64"),
        (lambda rows: _with(rows, "user_id", Tensor("user_id", "INT64", [5])), "'user_id' must be BYTES"),
        (lambda rows: _with(rows, "amount", Tensor("amount", "FP64", [1.0, 2.0])), "holds 2 values, the others 1"),
        (lambda rows: _with(rows, "amount", Tensor("amount", "FP64", [1.0], shape=[1, 2])), "expected [n] or [n, 1]"),
        (lambda rows: _with(rows, "amount", Tensor("amount", "FP64", [1.0, 2.0], shape=[1])), "does not fit its shape"),
        (
            lambda rows: _with(rows, "amount", Tensor("amount", "FP64", [float("nan")])),
            "amount: Input should be a finite",
        ),
        (lambda rows: _with(rows, "user_id", Tensor("user_id", "BYTES", [b"\xff"])), "'user_id'[0] is not UTF-8"),
        (lambda rows: _with(rows, "user_id", Tensor("user_id", "BYTES", [3])), "'user_id'[0] must be text"),
        (lambda rows: _with(rows, "channel", Tensor("channel", "BYTES", ["by pigeon"])), "row[0]: channel"),
    ],
)
def test_v2_refusals_say_what_is_wrong(change: Any, message: str) -> None:
    with pytest.raises(RequestError) as refused:
        REQUEST.parse_v2(change([transaction_fields()]), max_batch=2, rules=SCORED, now=NOW)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (Tensor("amount", "FP64", [True]), "tensor 'amount'[0] must be a JSON number (FP64), got a boolean"),
        (Tensor("amount", "FP64", ["12.5"]), "tensor 'amount'[0] must be a JSON number (FP64), got str"),
        (Tensor("amount", "FP64", [[1.0], ["2"]], shape=[2, 1]), "tensor 'amount'[1] must be a JSON number"),
        (Tensor("amount", "FP64", [10**400]), "tensor 'amount': a value does not fit a 64-bit float"),
        (Tensor("amount", "FP64", [-5.0]), "row[0]: amount: must be above 0"),
    ],
)
def test_v2_json_tensors_hold_numbers_and_the_value_rules_apply(amount: Tensor, message: str) -> None:
    rows = [transaction_fields() for _ in range(amount.shape[0])]
    with pytest.raises(RequestError) as refused:
        REQUEST.parse_v2(_with(rows, "amount", amount), max_batch=2, rules=SCORED, now=NOW)
    assert message in str(refused.value)


def test_v2_refuses_an_event_time_ahead_of_the_server_clock() -> None:
    rows = [transaction_fields(), transaction_fields(event_time="2030-01-01T00:00:00Z")]
    with pytest.raises(RequestError, match=r"row\[1\]: event_time: 2030-01-01T00:00:00\+00:00 is in the future"):
        REQUEST.parse_v2(tensors(rows), max_batch=2, rules=SCORED, now=NOW)


def test_v2_batch_bounds() -> None:
    with pytest.raises(RequestError, match="at most 2 per request"):
        REQUEST.parse_v2(tensors([transaction_fields()] * 3), max_batch=2, rules=SCORED, now=NOW)
    empty = [Tensor(name, datatype, []) for name, datatype in REQUEST.tensors.items()]
    with pytest.raises(RequestError, match="is empty"):
        REQUEST.parse_v2(empty, max_batch=2, rules=SCORED, now=NOW)
