"""A use case of another domain, for tests that prove a platform part is generic: ad impressions and clicks.

Different from the fraud case in every seam it touches: other contracts and stream names, an
integer and a boolean column, its own value rules (a bid above 0 and at most a cap, a known
placement) and batch rules (the bid's mean and quantiles, the share of mobile impressions, no
campaign behind most of the traffic).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from berg.contracts._types import CONTRACT_CONFIG, EventId, JsonBool, JsonNumber, SchemaVersion1, UtcDatetime
from berg.contracts.batch_rules import (
    BatchBounds,
    BatchRule,
    Bounds,
    MeanBetween,
    QuantilesBetween,
    ShareBetween,
    TopValueShareAtMost,
)
from berg.contracts.rules import ContractRules, OneOf, PositiveAtMost, ValueRule
from berg.features.aggregation import AggregationView, WindowedAggregate
from berg.features.feature_set import (
    Entity,
    FeatureSet,
    FeatureSpec,
    OnDemandView,
    SnapshotAggregate,
    SnapshotView,
    StreamingView,
    ViewColumns,
)
from berg.problem.card import ProblemCard
from berg.usecase import LabelJoin, Stream, UseCase
from berg_fraud.use_case import problem_card

__all__ = [
    "ClickV1",
    "ClicksBatchBounds",
    "ClicksRules",
    "ImpressionV1",
    "bid_context",
    "clicks",
    "clicks_features",
    "impression",
]


class ImpressionV1(BaseModel):
    """An ad shown to a user."""

    model_config = CONTRACT_CONFIG

    schema_version: SchemaVersion1 = 1
    event_id: EventId
    event_time: UtcDatetime
    user_id: str
    campaign_id: str
    placement: str
    device: Literal["mobile", "desktop"]
    bid: JsonNumber
    slot: int


class ClickV1(BaseModel):
    """Whether an impression was clicked, known within minutes."""

    model_config = CONTRACT_CONFIG

    event_id: EventId
    event_time: UtcDatetime
    impression_event_id: EventId
    user_id: str
    clicked: JsonBool


class ClicksBatchBounds(BatchBounds):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bid_mean: Bounds = (0.01, 5.0)
    bid_p95: Bounds = (0.05, 20.0)
    mobile_share: Bounds = (0.05, 0.95)
    max_campaign_share: float = 0.8


class ClicksRules(ContractRules):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bid: float = 50.0
    placements: frozenset[str] = frozenset({"feed", "sidebar", "search"})
    batch: ClicksBatchBounds = ClicksBatchBounds()

    def declare_value_rules(self) -> Mapping[str, tuple[ValueRule, ...]]:
        return {
            "impressions": (
                PositiveAtMost("bid", self.max_bid),
                OneOf("placement", tuple(sorted(self.placements))),
                *self.common_value_rules(),
            )
        }

    def declare_batch_rules(self) -> Mapping[str, tuple[BatchRule, ...]]:
        bounds = self.batch
        return {
            "impressions": (
                MeanBetween("bid", *bounds.bid_mean),
                QuantilesBetween("bid", (0.95,), (bounds.bid_p95,)),
                ShareBetween("device", "mobile", *bounds.mobile_share, others=("desktop",)),
                TopValueShareAtMost("campaign_id", bounds.max_campaign_share),
            )
        }


def _card() -> ProblemCard:
    # The reference card with another name and target: enough for a descriptor the tests build.
    reference = problem_card()
    return reference.model_copy(
        update={"name": "clicks", "target": reference.target.model_copy(update={"column": "clicked"})}
    )


_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)
VIEWER = Entity("viewer", "user_id", "A person ads are shown to.")
CAMPAIGN = Entity("campaign", "campaign_id", "An advertiser's campaign.")
VIEWER_AGGREGATES = AggregationView(
    "viewer_aggregates",
    "user_id",
    "last_impression_unix",
    (
        WindowedAggregate("impressions_1h", "count", _HOUR, description="Impressions shown to the viewer, last hour."),
        WindowedAggregate("bid_mean_24h", "mean", _DAY, field="bid", description="Mean bid, last 24 hours."),
        WindowedAggregate("campaigns_24h", "distinct", _DAY, field="campaign_id", description="Distinct campaigns."),
        WindowedAggregate("mobile_share_24h", "share", _DAY, field="device", value="mobile", description="Mobile."),
    ),
)


def bid_context(inputs: pd.DataFrame) -> pd.DataFrame:
    """The bid over the viewer's 24-hour mean, and the minutes since the viewer's previous impression."""
    import pandas as pd

    bid = pd.to_numeric(inputs["bid"], errors="coerce").astype("float64")
    mean = pd.to_numeric(inputs["bid_mean_24h"], errors="coerce").astype("float64")
    since = pd.to_numeric(inputs["event_unix"], errors="coerce") - pd.to_numeric(inputs["last_impression_unix"])
    out = pd.DataFrame(index=inputs.index)
    out["bid_to_viewer_mean_24h"] = (bid / mean.where(mean > 0)).astype("float64")
    out["minutes_since_previous_impression"] = (since / 60.0).astype("float64")
    return out


def clicks_features() -> FeatureSet:
    """Streaming viewer aggregates, hourly campaign click-through snapshots, the bid in context."""
    return FeatureSet(
        service="clicks_model_v1",
        streaming=(StreamingView(VIEWER_AGGREGATES, VIEWER, ttl=_DAY, description="What the viewer was shown."),),
        snapshots=(
            SnapshotView(
                "campaign_aggregates",
                CAMPAIGN,
                every=_HOUR,
                ttl=_DAY,
                aggregates=(
                    SnapshotAggregate("campaign_impressions_6h", "count", timedelta(hours=6)),
                    SnapshotAggregate("campaign_click_rate_1d", "positive_share", _DAY),
                ),
                as_of="campaign_snapshot_unix",
                available="campaign_available_unix",
                description="Campaign click-through from the clicks known at the snapshot.",
            ),
        ),
        on_demand=OnDemandView(
            bid_context,
            request_source="impression_request",
            request_fields=("bid",),
            inputs=(ViewColumns("viewer_aggregates", ("bid_mean_24h", "last_impression_unix")),),
            features=(
                FeatureSpec("bid_to_viewer_mean_24h", "float", "The bid over the viewer's 24-hour mean."),
                FeatureSpec("minutes_since_previous_impression", "float", "Minutes since the previous impression."),
            ),
        ),
        request_features=("bid", "slot"),
    )


def clicks() -> UseCase:
    """The clicks use case's descriptor (not installed: tests build it directly)."""
    return UseCase(
        name="clicks",
        card=_card(),
        scored=Stream(
            "impressions", ImpressionV1, "impressions.raw", "impressions.ingested", "impressions.valid", key="user_id"
        ),
        labels=Stream("clicks", ClickV1, "clicks.raw", "clicks.ingested", "clicks.valid", key="user_id"),
        label_join=LabelJoin(event_id="event_id", subject_id="impression_event_id", target="clicked", amount="bid"),
        features=clicks_features(),
        rules=ClicksRules,
    )


def impression(number: int, now: datetime, **overrides: Any) -> ImpressionV1:
    """A plausible impression: ``number`` varies its user, campaign, device and bid."""
    fields: dict[str, Any] = {
        "event_id": uuid.UUID(int=number + 1),
        "event_time": now.astimezone(UTC),
        "user_id": f"u-{number % 37}",
        "campaign_id": f"c-{number % 5}",
        "placement": ("feed", "sidebar", "search")[number % 3],
        "device": "mobile" if number % 2 else "desktop",
        "bid": 0.2 + (number % 10) / 10,
        "slot": number % 4,
    }
    return ImpressionV1.model_validate({**fields, **overrides})
