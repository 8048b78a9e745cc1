"""Input events, contract v1: a card transaction and its (delayed) label.

A contract fixes structure: fields, JSON types (strictly: ``"12.5"`` or ``true`` is
not an amount, a number is not an event time), finiteness, string bounds, aware
timestamps. What a value means (an amount is positive, a category is known, an
event time is not in the future) is a value rule of :mod:`berg.contracts.rules`:
the validation service dead-letters records that break one, with the failed
expectation's name, and serving refuses scoring requests that do.

Both are keyed by ``user_id`` on Kafka, so one user's events stay in order
within a partition. A label refers to the transaction it judges by
``transaction_event_id``; labels arrive days after the transaction in event
time, and some fraud is never labelled.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, StringConstraints

from berg.contracts._types import (
    CONTRACT_CONFIG,
    EventId,
    Identifier,
    JsonBool,
    JsonNumber,
    SchemaVersion1,
    UtcDatetime,
)

__all__ = ["Channel", "LabelSource", "LabelV1", "TransactionV1"]

Channel = Literal["card_present", "card_not_present"]
LabelSource = Literal["chargeback", "customer_report", "manual_review"]

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
MerchantCategory = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]

MAX_AMOUNT = 1_000_000.0
"""No card transaction is larger; a bigger amount is a broken upstream, not a customer (a value rule)."""


class TransactionV1(BaseModel):
    """A card payment as the payment app saw it."""

    model_config = CONTRACT_CONFIG

    schema_version: SchemaVersion1 = 1
    event_id: EventId
    event_time: UtcDatetime
    """When the payment happened (event time), not when Berg saw it."""
    user_id: Identifier
    merchant_id: Identifier
    amount: JsonNumber
    """In ``currency`` units. The contract asks for a finite JSON number; that it is
    positive and at most :data:`MAX_AMOUNT` is a value rule (:mod:`berg.contracts.rules`)."""
    currency: CurrencyCode = "EUR"
    merchant_category: MerchantCategory
    """ISO 18245 merchant category code, four digits; whether Berg knows it is a value rule."""
    channel: Channel
    country: CountryCode
    """Where the card was used (ISO 3166-1 alpha-2)."""


class LabelV1(BaseModel):
    """The verdict on one transaction, known only later (a chargeback, a report)."""

    model_config = CONTRACT_CONFIG

    schema_version: SchemaVersion1 = 1
    event_id: EventId
    event_time: UtcDatetime
    """When the label became known; always after the transaction."""
    transaction_event_id: EventId
    """The ``event_id`` of the transaction this label judges."""
    user_id: Identifier
    is_fraud: JsonBool
    source: LabelSource = "chargeback"
