"""Request bodies are standard JSON; where a number is not one, the refusal names the field.

orjson (KServe's parser, and ours) refuses ``NaN``, ``Infinity`` and numbers beyond a
64-bit float (``1e400``), but says only "line 1 column 179". Python's own ``json`` reads
all of them, so a body orjson refused is read again with it, marking each such number,
to name where they sit: ``instances[0].amount: NaN is not a JSON number``.

Example::

    body = load_json(raw)            # or, after orjson refused it:
    where = non_finite_numbers(raw)  # ["instances[0].amount: NaN is not a JSON number ..."]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from berg_serving.scoring_request import RequestError

__all__ = ["load_json", "non_finite_numbers"]

_MAX_REPORTED = 5


@dataclass(frozen=True)
class _NotANumber:
    token: str


def _number(text: str) -> object:
    value = float(text)  # float() never raises on a JSON number; it overflows to infinity
    if not math.isfinite(value):
        return _NotANumber(text)
    return int(text) if text.lstrip("-").isdigit() else value


def _paths(value: object, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, _NotANumber):
        yield where or "(the body)", value.token
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, f"{where}[{index}]")


def non_finite_numbers(text: bytes | str) -> list[str]:
    """Where ``text`` holds ``NaN``, ``Infinity`` or a number beyond a 64-bit float, one line each.

    Empty when there is none, or when ``text`` is not JSON even with them.
    """
    try:
        parsed = json.loads(text, parse_constant=_NotANumber, parse_float=_number, parse_int=_number)
    except (ValueError, RecursionError):
        return []
    found = []
    for where, token in _paths(parsed, ""):
        shown = token if len(token) <= 20 else f"{token[:12]}...({len(token)} characters)"
        found.append(
            f"{where}: {shown} is not a JSON number (JSON has no NaN or Infinity, and a number must fit a 64-bit float)"
        )
    return found


def load_json(body: bytes) -> object:
    """The parsed body.

    Raises:
        RequestError: not standard JSON; naming the fields that hold a non-finite number.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        found = non_finite_numbers(body)
        if found:
            raise RequestError("; ".join(found[:_MAX_REPORTED])) from None
        raise RequestError(f"the body is not JSON: {error}") from None
