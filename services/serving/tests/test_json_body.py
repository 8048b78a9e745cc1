"""Request bodies are standard JSON; a NaN, an Infinity or a number beyond a float is refused by name."""

from __future__ import annotations

import pytest

from berg_serving.json_body import load_json, non_finite_numbers
from berg_serving.scoring_request import RequestError

pytestmark = pytest.mark.unit


def test_standard_json_is_read() -> None:
    assert load_json(b'{"instances": [{"amount": 12.5, "n": 3}]}') == {"instances": [{"amount": 12.5, "n": 3}]}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"instances": [{"amount": NaN}]}', "instances[0].amount: NaN is not a JSON number"),
        (b'{"instances": [{"amount": Infinity}]}', "instances[0].amount: Infinity is not a JSON number"),
        (b'{"instances": [{"amount": -Infinity}]}', "instances[0].amount: -Infinity is not a JSON number"),
        (b'{"instances": [{"amount": 1e400}]}', "instances[0].amount: 1e400 is not a JSON number"),
        (b'{"instances": [{"a": 1}, {"amount": -1e400}]}', "instances[1].amount: -1e400 is not a JSON number"),
        (b'{"instances": [{"amount": 1' + b"0" * 400 + b"}]}", "instances[0].amount: 100000000000...(401 characters)"),
        (b'{"inputs": [{"data": [1.5, NaN]}]}', "inputs[0].data[1]: NaN is not a JSON number"),
        (b"NaN", "(the body): NaN is not a JSON number"),
    ],
)
def test_a_number_json_does_not_have_is_refused_naming_where_it_is(body: bytes, where: str) -> None:
    with pytest.raises(RequestError) as refused:
        load_json(body)
    assert where in str(refused.value)


def test_every_such_number_is_named() -> None:
    assert [line.split(":")[0] for line in non_finite_numbers(b'{"a": NaN, "b": [1, Infinity]}')] == ["a", "b[1]"]


@pytest.mark.parametrize("body", [b'{"instances": [', b"{'a': 1}", b"[" * 100_000, b"\xff"])
def test_what_is_not_json_at_all_says_so(body: bytes) -> None:
    assert non_finite_numbers(body) == []
    with pytest.raises(RequestError, match="the body is not JSON"):
        load_json(body)
