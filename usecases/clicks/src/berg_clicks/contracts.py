"""The clicks case's event contracts: an impression (scored when served) and its click label.

One definition of each record shape: the landing parquet, the validation frame, the label store
and serving's request tensors are derived from these models (:mod:`berg.contracts.shape`).
A change of meaning is a new version (``ImpressionV2``), never an edit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from berg.contracts._types import (
    CONTRACT_CONFIG,
    EventId,
    Identifier,
    JsonBool,
    JsonNumber,
    SchemaVersion1,
    UtcDatetime,
)

__all__ = ["ClickV1", "Device", "ImpressionV1"]

Device = Literal["mobile", "desktop"]
"""The kind of screen the ad was shown on."""


class ImpressionV1(BaseModel):
    """An ad shown to a viewer, as the ad server saw it when it served it."""

    model_config = CONTRACT_CONFIG

    schema_version: SchemaVersion1 = 1
    event_id: EventId
    event_time: UtcDatetime
    """When the ad was shown (event time)."""
    viewer_id: Identifier
    """The person it was shown to (a pseudonymous id): the key of the stream and of the viewer's features."""
    campaign_id: Identifier
    """The advertiser's campaign the ad belongs to."""
    placement: Identifier
    """Where on the page (``feed``, ``sidebar``, ``search``); whether it is a known one is a value rule."""
    device: Device
    bid: JsonNumber
    """What the advertiser bid for this impression, in the card's currency; that it is above 0 and at most
    the rules' ``max_bid`` is a value rule."""
    slot: Annotated[int, Field(ge=0)]
    """The ad's position within its placement, 0 at the top."""


class ClickV1(BaseModel):
    """The verdict on one impression: clicked within the attribution window, or not (known at its close)."""

    model_config = CONTRACT_CONFIG

    schema_version: SchemaVersion1 = 1
    event_id: EventId
    event_time: UtcDatetime
    """When the verdict became known: the click, or the close of the attribution window."""
    impression_event_id: EventId
    """The ``event_id`` of the impression this label judges."""
    viewer_id: Identifier
    clicked: JsonBool
