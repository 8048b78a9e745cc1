"""What a scoring request may hold, in either protocol, checked against the use case's scored contract.

A scoring request carries one or more events, each exactly the fields of the use case's
scored contract (``use_case.scored.contract``; ``schema_version`` may be left out). A :class:`ScoringContract` is
built from it once at start-up:

- **V1** (``POST /v1/models/<model>:predict``): ``{"instances": [{<event>}, ...]}``.
- **V2**, the Open Inference Protocol (``POST /v2/models/<model>/infer``, REST or gRPC): one
  tensor per field, named after it, all of shape ``[n]`` (or ``[n, 1]``), row ``i`` of every
  tensor making event ``i`` (the columnar layout of KServe's ``InferRequest.as_dataframe``).
  The tensors and their datatypes derive from the contract
  (:func:`berg.contracts.shape.v2_datatypes`, :attr:`ScoringContract.tensors`): text and
  timestamps (ISO 8601 with a zone) are ``BYTES``, numbers ``FP64`` (``FP32`` and integer
  types are accepted), integers ``INT64`` (any integer type), booleans ``BOOL``. A field
  with a default may be left out.

Each event must pass the contract, strictly typed (a number is a JSON number, never
``true`` or ``"12.5"``; a JSON tensor's values are of its kind), and the value rules of
:mod:`berg.contracts.rules` that the use case declares for its scored stream, the ones
validation applies (an event time no later than the server's clock, ``now``, passed in,
plus the allowed skew; an event id once per request; the use case's own bounds and sets).

Every problem is a :class:`RequestError` whose message names the event (``instances[i]``
or ``row[i]``) and the field, so the caller gets a 400 that says what to fix. Pure: no
KServe import, no clock; V2 tensors are anything with ``name``, ``datatype``, ``shape``,
``data`` and ``as_numpy()``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from berg.contracts.rules import ValueRule, duplicated, violations
from berg.contracts.shape import contract_columns, v2_datatypes

__all__ = [
    "INTEGER_DATATYPES",
    "NUMERIC_DATATYPES",
    "RequestError",
    "ScoringContract",
    "Tensor",
    "check_json_numbers",
]

_MAX_REPORTED = 5

INTEGER_DATATYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32"})
NUMERIC_DATATYPES = frozenset({"FP64", "FP32", "FP16", *INTEGER_DATATYPES})

Event = TypeVar("Event", bound=BaseModel, covariant=True)


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
        field = ".".join(str(part) for part in problem["loc"]) or "(the event)"
        lines.append(f"{where}: {field}: {problem['msg']}")
    return lines


def _check_batch(count: int, max_batch: int, what: str) -> None:
    if count == 0:
        raise RequestError(f"{what} is empty: send at least one event")
    if count > max_batch:
        raise RequestError(f"{what} holds {count} events; at most {max_batch} per request")


def _leaves(data: object) -> Iterator[object]:
    if isinstance(data, list | tuple):
        for item in data:
            yield from _leaves(item)
    else:
        yield data


def _check_json_values(tensor: Tensor, expected: str) -> None:
    """Refuse a JSON tensor whose values are not of its kind: numbers (integers for ``INT64``, booleans for
    ``BOOL``). Raw tensors (binary REST, gRPC) carry their bytes, typed by the datatype, and pass."""
    if not isinstance(tensor.data, list):
        return
    for index, value in enumerate(_leaves(tensor.data)):
        if expected == "BOOL":
            fits, kind = isinstance(value, bool), "a JSON boolean"
        elif expected == "INT64":
            fits, kind = isinstance(value, int) and not isinstance(value, bool), "a JSON integer"
        else:
            fits, kind = isinstance(value, int | float) and not isinstance(value, bool), "a JSON number"
        if not fits:
            got = "a boolean" if isinstance(value, bool) else type(value).__name__
            raise RequestError(f"tensor {tensor.name!r}[{index}] must be {kind} ({tensor.datatype}), got {got}")


def check_json_numbers(tensor: Tensor) -> None:
    """Refuse a numeric tensor whose JSON values are not all numbers (``true``, ``"12.5"``).

    numpy would read them as 1.0 and 12.5. Raw tensors (binary REST, gRPC) carry their bytes,
    typed by the datatype, and pass.

    Raises:
        RequestError: naming the tensor and the first offending value's position.
    """
    _check_json_values(tensor, "FP64")


def _check_datatype(name: str, expected: str, given: str) -> None:
    if expected == "BYTES" and given != "BYTES":
        raise RequestError(f"tensor {name!r} must be BYTES (UTF-8 text), got {given}")
    if expected == "FP64" and given not in NUMERIC_DATATYPES:
        raise RequestError(f"tensor {name!r} must be FP64 (or another numeric type), got {given}")
    if expected == "INT64" and given not in INTEGER_DATATYPES:
        raise RequestError(f"tensor {name!r} must be INT64 (or another integer type), got {given}")
    if expected == "BOOL" and given != "BOOL":
        raise RequestError(f"tensor {name!r} must be BOOL, got {given}")


def _text(name: str, values: list[Any]) -> list[Any]:
    column: list[Any] = []
    for index, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestError(f"tensor {name!r}[{index}] is not UTF-8 text") from None
        if not isinstance(value, str):
            raise RequestError(f"tensor {name!r}[{index}] must be text, got {type(value).__name__}")
        column.append(value)
    return column


class ScoringContract(Generic[Event]):
    """The scoring request of one scored contract, in both protocols; built once at start-up.

    Example:
        >>> request = ScoringContract(use_case.scored.contract)
        >>> request.tensors  # {"event_id": "BYTES", "event_time": "BYTES", ..., "amount": "FP64", ...}
        >>> request.parse_v1({"instances": [...]}, max_batch=64, rules=rules, now=now)

    Raises:
        TypeError: a field of the contract is no column (a list, an object).
    """

    def __init__(self, contract: type[Event]) -> None:
        self.contract = contract
        exclude = {"schema_version"} & set(contract.model_fields)
        columns = contract_columns(contract, exclude=exclude)
        self.tensors: Mapping[str, str] = MappingProxyType(v2_datatypes(columns))
        """The V2 input tensors of a scoring request and their datatypes (also the model metadata's inputs)."""
        self._optional = frozenset(column.name for column in columns if not column.required)

    def parse_v1(self, body: object, *, max_batch: int, rules: Sequence[ValueRule], now: datetime) -> list[Event]:
        """The events of a V1 body, ``{"instances": [...]}``, checked at the server's clock ``now``.

        Raises:
            RequestError: not that shape, too many or no instances, or an event the contract or a value
                rule refuses.
        """
        if not isinstance(body, dict):
            raise RequestError(f'expected a JSON object {{"instances": [<event>, ...]}}, got {type(body).__name__}')
        unknown = sorted(str(key) for key in body if key != "instances")
        if unknown:
            raise RequestError(f'unknown field(s) {unknown}: a V1 request is {{"instances": [<event>, ...]}}')
        instances = body.get("instances")
        if not isinstance(instances, list):
            raise RequestError('"instances" must be a list of events')
        _check_batch(len(instances), max_batch, '"instances"')
        for index, instance in enumerate(instances):
            if not isinstance(instance, dict):
                kind = type(instance).__name__
                raise RequestError(f"instances[{index}] must be a JSON object (an event), got {kind}")
        return self._validate_rows(instances, "instances", rules, now)

    def parse_v2(
        self, inputs: Sequence[Tensor], *, max_batch: int, rules: Sequence[ValueRule], now: datetime
    ) -> list[Event]:
        """The events of a V2 request: one tensor per field (see the module docstring), checked at the
        server's clock ``now``.

        Raises:
            RequestError: an unknown, missing or repeated tensor, a wrong datatype or shape, too many or
                no rows, or an event the contract or a value rule refuses.
        """
        tensors = self.tensors
        names = [tensor.name for tensor in inputs]
        unknown = sorted({name for name in names if name not in tensors})
        if unknown:
            raise RequestError(f"unknown input tensor(s) {unknown}; a scoring request has {sorted(tensors)}")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise RequestError(f"input tensor(s) {repeated} given more than once")
        missing = sorted(set(tensors) - set(names) - self._optional)
        if missing:
            raise RequestError(f"missing input tensor(s) {missing}; a scoring request has {sorted(tensors)}")
        columns: dict[str, list[Any]] = {}
        rows: int | None = None
        for tensor in inputs:
            columns[tensor.name], rows = self._column(tensor, rows, max_batch)
        assert rows is not None  # at least the required tensors were given
        return self._validate_rows(
            [{name: column[i] for name, column in columns.items()} for i in range(rows)], "row", rules, now
        )

    def _validate_rows(
        self, rows: Sequence[Mapping[str, Any]], where: str, rules: Sequence[ValueRule], now: datetime
    ) -> list[Event]:
        events: list[Event] = []
        problems: list[str] = []
        for index, row in enumerate(rows):
            try:
                event = self.contract.model_validate(row)
            except ValidationError as error:
                problems.extend(_describe(error, f"{where}[{index}]"))
            else:
                events.append(event)
                problems.extend(f"{where}[{index}]: {problem}" for problem in violations(rules, event, now))
            if len(problems) >= _MAX_REPORTED:
                break
        if not problems:
            repeated = duplicated(rules, events)
            problems.extend(f"{where}[{index}]: {problem}" for index, problem in sorted(repeated.items()))
        if problems:
            raise RequestError("invalid event(s): " + "; ".join(problems[:_MAX_REPORTED]))
        return events

    def _column(self, tensor: Tensor, rows: int | None, max_batch: int) -> tuple[list[Any], int]:
        name = tensor.name
        expected = self.tensors[name]
        shape = list(tensor.shape)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or any(
            not isinstance(size, int) or size < 0 for size in shape
        ):
            raise RequestError(f"tensor {name!r} has shape {shape}; expected [n] or [n, 1], one value per event")
        if rows is not None and shape[0] != rows:
            raise RequestError(f"tensor {name!r} holds {shape[0]} values, the others {rows}: one value per event")
        _check_batch(shape[0], max_batch, f"tensor {name!r}")
        _check_datatype(name, expected, tensor.datatype)
        if expected != "BYTES":
            _check_json_values(tensor, expected)
        try:
            values = np.asarray(tensor.as_numpy()).reshape(-1)
            if len(values) != shape[0]:
                raise RequestError(f"tensor {name!r}: shape {shape} but {len(values)} values")
            if expected == "BYTES":
                return _text(name, values.tolist()), shape[0]
            if expected == "BOOL":
                return [bool(value) for value in values.astype(np.bool_).tolist()], shape[0]
            if expected == "INT64":
                return [int(value) for value in values.astype(np.int64).tolist()], shape[0]
            return [float(value) for value in values.astype(np.float64).tolist()], shape[0]
        except RequestError:
            raise
        except OverflowError:
            size = "64-bit integer" if expected == "INT64" else "64-bit float"
            raise RequestError(f"tensor {name!r}: a value does not fit a {size}") from None
        except (ValueError, TypeError) as error:
            raise RequestError(
                f"tensor {name!r}: its data does not fit its shape {shape} and datatype: {error}"
            ) from None
