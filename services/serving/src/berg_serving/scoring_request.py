"""What a scoring request may hold, in either protocol, checked against the transaction contract.

A scoring request carries one or more transactions, each exactly the fields of
:class:`~berg.contracts.TransactionV1` (``schema_version`` may be left out):

- **V1** (``POST /v1/models/fraud:predict``): ``{"instances": [{<transaction>}, ...]}``.
- **V2**, the Open Inference Protocol (``POST /v2/models/fraud/infer``, REST or gRPC): one
  tensor per field, named after it, all of shape ``[n]`` (or ``[n, 1]``), row ``i`` of every
  tensor making transaction ``i`` (the columnar layout of KServe's ``InferRequest.as_dataframe``).
  Text fields (``event_id``, ``event_time`` as ISO 8601 with a zone, ``user_id``,
  ``merchant_id``, ``currency``, ``merchant_category``, ``channel``, ``country``) are ``BYTES``;
  ``amount`` is ``FP64`` (``FP32`` and integer types are accepted). ``currency`` may be omitted
  (``EUR``).

Each transaction must pass the contract, strictly typed (an amount is a JSON number, never
``true`` or ``"12.5"``; a JSON tensor's values are numbers), and the value rules of
:mod:`berg.contracts.rules`, the ones validation applies: an amount above 0 and at most the
largest, an event time no later than the server's clock (``now``, passed in) plus the
allowed skew, a known currency and merchant category, an event id once per request.

Every problem is a :class:`RequestError` whose message names the transaction and the field,
so the caller gets a 400 that says what to fix. Pure: no KServe import, no clock; V2 tensors
are anything with ``name``, ``datatype``, ``shape``, ``data`` and ``as_numpy()``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from berg.contracts import TransactionV1
from berg.contracts.rules import ValueRule, duplicated, violations
from berg.contracts.shape import contract_columns, v2_datatypes

__all__ = [
    "NUMERIC_DATATYPES",
    "TRANSACTION_TENSORS",
    "RequestError",
    "Tensor",
    "check_json_numbers",
    "parse_v1",
    "parse_v2",
]

_MAX_REPORTED = 5

_TENSOR_COLUMNS = contract_columns(TransactionV1, exclude={"schema_version"})

TRANSACTION_TENSORS: Mapping[str, str] = MappingProxyType(v2_datatypes(_TENSOR_COLUMNS))
"""The V2 input tensors of a scoring request and their datatypes (also the model metadata's inputs)."""

NUMERIC_DATATYPES = frozenset({"FP64", "FP32", "FP16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32"})

_OPTIONAL_TENSORS = frozenset(column.name for column in _TENSOR_COLUMNS if not column.required)


class RequestError(ValueError):
    """A request the contract refuses; the message says what is wrong and where."""


class Tensor(Protocol):
    """A V2 input tensor as KServe's ``InferInput`` presents it."""

    @property
    def name(self) -> str: ...

    @property
    def datatype(self) -> str: ...

    @property
    def shape(self) -> list[int]: ...

    @property
    def data(self) -> object:
        """The values as JSON gave them (a list, possibly nested), or anything else for raw tensors."""

    def as_numpy(self) -> np.ndarray: ...


def _describe(error: ValidationError, where: str) -> list[str]:
    lines = []
    for problem in error.errors(include_url=False, include_input=False)[:_MAX_REPORTED]:
        field = ".".join(str(part) for part in problem["loc"]) or "(the transaction)"
        lines.append(f"{where}: {field}: {problem['msg']}")
    return lines


def _validate_rows(
    rows: Sequence[Mapping[str, Any]], where: str, rules: Sequence[ValueRule], now: datetime
) -> list[TransactionV1]:
    transactions: list[TransactionV1] = []
    problems: list[str] = []
    for index, row in enumerate(rows):
        try:
            transaction = TransactionV1.model_validate(row)
        except ValidationError as error:
            problems.extend(_describe(error, f"{where}[{index}]"))
        else:
            transactions.append(transaction)
            problems.extend(f"{where}[{index}]: {problem}" for problem in violations(rules, transaction, now))
        if len(problems) >= _MAX_REPORTED:
            break
    if not problems:
        repeated = duplicated(rules, transactions)
        problems.extend(f"{where}[{index}]: {problem}" for index, problem in sorted(repeated.items()))
    if problems:
        raise RequestError("invalid transaction(s): " + "; ".join(problems[:_MAX_REPORTED]))
    return transactions


def _check_batch(count: int, max_batch: int, what: str) -> None:
    if count == 0:
        raise RequestError(f"{what} is empty: send at least one transaction")
    if count > max_batch:
        raise RequestError(f"{what} holds {count} transactions; at most {max_batch} per request")


def parse_v1(body: object, *, max_batch: int, rules: Sequence[ValueRule], now: datetime) -> list[TransactionV1]:
    """The transactions of a V1 body, ``{"instances": [...]}``, checked at the server's clock ``now``.

    Raises:
        RequestError: not that shape, too many or no instances, or a transaction the contract or
            a value rule refuses.
    """
    if not isinstance(body, dict):
        raise RequestError(f'expected a JSON object {{"instances": [<transaction>, ...]}}, got {type(body).__name__}')
    unknown = sorted(str(key) for key in body if key != "instances")
    if unknown:
        raise RequestError(f'unknown field(s) {unknown}: a V1 request is {{"instances": [<transaction>, ...]}}')
    instances = body.get("instances")
    if not isinstance(instances, list):
        raise RequestError('"instances" must be a list of transactions')
    _check_batch(len(instances), max_batch, '"instances"')
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            kind = type(instance).__name__
            raise RequestError(f"instances[{index}] must be a JSON object (a transaction), got {kind}")
    return _validate_rows(instances, "instances", rules, now)


def _leaves(data: object) -> Iterator[object]:
    if isinstance(data, list | tuple):
        for item in data:
            yield from _leaves(item)
    else:
        yield data


def check_json_numbers(tensor: Tensor) -> None:
    """Refuse a numeric tensor whose JSON values are not all numbers (``true``, ``"12.5"``).

    numpy would read them as 1.0 and 12.5. Raw tensors (binary REST, gRPC) carry their bytes,
    typed by the datatype, and pass.

    Raises:
        RequestError: naming the tensor and the first offending value's position.
    """
    if not isinstance(tensor.data, list):
        return
    for index, value in enumerate(_leaves(tensor.data)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            kind = "a boolean" if isinstance(value, bool) else type(value).__name__
            raise RequestError(f"tensor {tensor.name!r}[{index}] must be a JSON number ({tensor.datatype}), got {kind}")


def _column(tensor: Tensor, rows: int | None, max_batch: int) -> tuple[list[Any], int]:
    name = tensor.name
    expected = TRANSACTION_TENSORS[name]
    shape = list(tensor.shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or any(
        not isinstance(size, int) or size < 0 for size in shape
    ):
        raise RequestError(f"tensor {name!r} has shape {shape}; expected [n] or [n, 1], one value per transaction")
    if rows is not None and shape[0] != rows:
        raise RequestError(f"tensor {name!r} holds {shape[0]} values, the others {rows}: one value per transaction")
    _check_batch(shape[0], max_batch, f"tensor {name!r}")
    if expected == "BYTES" and tensor.datatype != "BYTES":
        raise RequestError(f"tensor {name!r} must be BYTES (UTF-8 text), got {tensor.datatype}")
    if expected != "BYTES" and tensor.datatype not in NUMERIC_DATATYPES:
        raise RequestError(f"tensor {name!r} must be FP64 (or another numeric type), got {tensor.datatype}")
    if expected != "BYTES":
        check_json_numbers(tensor)
    try:
        values = np.asarray(tensor.as_numpy()).reshape(-1)
    except OverflowError:
        raise RequestError(f"tensor {name!r}: a value does not fit a 64-bit float") from None
    except (ValueError, TypeError) as error:
        raise RequestError(f"tensor {name!r}: its data does not fit its shape {shape} and datatype: {error}") from None
    if len(values) != shape[0]:
        raise RequestError(f"tensor {name!r}: shape {shape} but {len(values)} values")
    if expected == "BYTES":
        column: list[Any] = []
        for index, value in enumerate(values.tolist()):
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise RequestError(f"tensor {name!r}[{index}] is not UTF-8 text") from None
            if not isinstance(value, str):
                raise RequestError(f"tensor {name!r}[{index}] must be text, got {type(value).__name__}")
            column.append(value)
        return column, shape[0]
    return [float(value) for value in values.astype(np.float64).tolist()], shape[0]


def parse_v2(
    inputs: Sequence[Tensor], *, max_batch: int, rules: Sequence[ValueRule], now: datetime
) -> list[TransactionV1]:
    """The transactions of a V2 request: one tensor per field (see the module docstring), checked at the
    server's clock ``now``.

    Raises:
        RequestError: an unknown, missing or repeated tensor, a wrong datatype or shape, too many or
            no rows, or a transaction the contract or a value rule refuses.
    """
    names = [tensor.name for tensor in inputs]
    unknown = sorted({name for name in names if name not in TRANSACTION_TENSORS})
    if unknown:
        raise RequestError(f"unknown input tensor(s) {unknown}; a scoring request has {sorted(TRANSACTION_TENSORS)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RequestError(f"input tensor(s) {repeated} given more than once")
    missing = sorted(set(TRANSACTION_TENSORS) - set(names) - _OPTIONAL_TENSORS)
    if missing:
        raise RequestError(f"missing input tensor(s) {missing}; a scoring request has {sorted(TRANSACTION_TENSORS)}")
    columns: dict[str, list[Any]] = {}
    rows: int | None = None
    for tensor in inputs:
        columns[tensor.name], rows = _column(tensor, rows, max_batch)
    assert rows is not None  # at least the required tensors were given
    return _validate_rows(
        [{name: column[i] for name, column in columns.items()} for i in range(rows)], "row", rules, now
    )
