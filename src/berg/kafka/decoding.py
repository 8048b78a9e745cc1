"""Turn raw record bytes into contract models, or into a reason to dead-letter them.

Decoding never raises anything but :class:`RecordRejected`, whose ``reason`` is
the dead-letter reason code: ``empty_value`` (a tombstone or missing value),
``undecodable`` (not UTF-8 JSON) or ``contract_violation`` (JSON that breaks
the contract).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, overload

from pydantic import BaseModel, ValidationError

from berg.kafka.records import RawRecord

__all__ = ["Decoded", "RecordRejected", "Rejected", "decode_contract", "decode_each", "split_batch"]

ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class JsonContract(Protocol[T_co]):
    """What decodes a record: a contract model, or a reader of several versions (``PredictionLogReader``)."""

    @property
    def __name__(self) -> str: ...

    def model_validate_json(self, json_data: str | bytes, /) -> T_co: ...


_JSON_ERROR_TYPES = frozenset({"json_invalid", "json_type"})


class RecordRejected(Exception):
    """A record that cannot go on; ``reason`` is its dead-letter reason code."""

    def __init__(self, reason: str, message: str, error_class: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.error_class = error_class or type(self).__name__


@overload
def decode_contract(model: type[ModelT], record: RawRecord) -> ModelT: ...


@overload
def decode_contract(model: JsonContract[T], record: RawRecord) -> T: ...


def decode_contract(model: type[BaseModel] | JsonContract[T], record: RawRecord) -> BaseModel | T:
    """Decode one record's value as a contract model.

    Raises:
        RecordRejected: with reason ``empty_value``, ``undecodable`` or ``contract_violation``.
    """
    if not record.value:
        raise RecordRejected("empty_value", f"{record.coordinates} has no value")
    try:
        return model.model_validate_json(record.value)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        reason = "undecodable" if any(p["type"] in _JSON_ERROR_TYPES for p in problems) else "contract_violation"
        summary = "; ".join(f"{'.'.join(str(part) for part in p['loc']) or '<root>'}: {p['msg']}" for p in problems)
        raise RecordRejected(reason, f"{model.__name__}: {summary}", "ValidationError") from None


@dataclass(frozen=True, slots=True)
class Decoded(Generic[T]):
    """A record and what it decoded to."""

    record: RawRecord
    value: T


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record and why it was refused."""

    record: RawRecord
    error: RecordRejected


def split_batch(
    records: Sequence[RawRecord], decode: Callable[[RawRecord], T]
) -> tuple[list[Decoded[T]], list[Rejected]]:
    """Decode a batch, keeping the good and the rejected apart, in order.

    One poison record never holds back the rest of the batch.
    """
    bad: list[Rejected] = []
    good = [Decoded(record, value) for record, value in decode_each(records, decode, bad)]
    return good, bad


def decode_each(
    records: Iterable[RawRecord], decode: Callable[[RawRecord], T], rejected: list[Rejected]
) -> Iterator[tuple[RawRecord, T]]:
    """Each record that decodes, with its value, one at a time; each that does not goes to ``rejected``.

    For a handler that keeps something smaller than the decoded value for the rest of its batch (a row):
    the values are not held together, so the garbage collector never has a batch of them to scan.
    """
    for record in records:
        try:
            value = decode(record)
        except RecordRejected as error:
            rejected.append(Rejected(record, error))
            continue
        yield record, value
