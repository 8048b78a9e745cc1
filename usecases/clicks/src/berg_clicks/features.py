"""The click model's features, as data: the ``clicks_model_v1`` feature service and its views.

What the viewer was shown lately (``viewer_aggregates``, streaming, keyed by ``viewer_id``: tired
viewers click less), the campaign's click-through from the labels known at an hourly snapshot
(``campaign_aggregates``: labels arrive within minutes, so the last hour's clicks are in it), and the
impression in context at request time (``bid_context``), plus its bid and slot as they are.
"""

from __future__ import annotations

from datetime import timedelta

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

__all__ = ["CAMPAIGN", "CAMPAIGN_SNAPSHOTS", "VIEWER", "VIEWER_AGGREGATES", "bid_context", "clicks_features"]

_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)

VIEWER = Entity("viewer", "viewer_id", "A person ads are shown to (the ad server's pseudonymous viewer_id).")
CAMPAIGN = Entity("campaign", "campaign_id", "An advertiser's campaign.")

VIEWER_AGGREGATES = AggregationView(
    name="viewer_aggregates",
    key=VIEWER.key,
    as_of="last_impression_unix",
    aggregates=(
        WindowedAggregate(
            "impressions_1h", "count", _HOUR, description="Impressions shown to the viewer in the last hour."
        ),
        WindowedAggregate("bid_mean_24h", "mean", _DAY, field="bid", description="Mean bid, last 24 hours."),
        WindowedAggregate(
            "campaigns_24h", "distinct", _DAY, field="campaign_id", description="Distinct campaigns, last 24 hours."
        ),
        WindowedAggregate(
            "mobile_share_24h",
            "share",
            _DAY,
            field="device",
            value="mobile",
            description="Share of the viewer's impressions on mobile, last 24 hours.",
        ),
    ),
)
"""The viewer's streaming features: the features service computes them per impression."""

CAMPAIGN_SNAPSHOTS = SnapshotView(
    name="campaign_aggregates",
    entity=CAMPAIGN,
    every=_HOUR,
    ttl=_DAY,
    aggregates=(
        SnapshotAggregate(
            "campaign_impressions_6h", "count", timedelta(hours=6), description="The campaign's impressions, 6 hours."
        ),
        SnapshotAggregate(
            "campaign_click_rate_1d",
            "positive_share",
            _DAY,
            description="Clicks known at the snapshot over the campaign's impressions of the last day.",
        ),
    ),
    as_of="campaign_snapshot_unix",
    available="campaign_available_unix",
    description="Campaign click-through from the clicks known at the snapshot (batch, materialized hourly).",
)


def bid_context(inputs: dict[str, list[float | None]]) -> dict[str, list[float]]:
    """The bid over the viewer's 24-hour mean, and the minutes since the viewer's previous impression.

    Feast's python mode: ``inputs`` holds, one value per event, the request fields (``bid``,
    ``event_unix``) and the viewer's ``bid_mean_24h`` and ``last_impression_unix``; a viewer without
    history has ``None`` (or NaN) there and gets NaN (never a division by zero).
    """

    # Feast rebuilds this function from its source text, without this module's globals: the import and
    # the helper are inside, and the column names are written out. Missing comes back as NaN, not None:
    # Feast builds an arrow table from the lists as they are, and a batch of only None would have no type.
    import math

    def number(value: float | None) -> float:
        return math.nan if value is None else float(value)

    columns = (inputs["bid"], inputs["event_unix"], inputs["bid_mean_24h"], inputs["last_impression_unix"])
    ratios: list[float] = []
    minutes: list[float] = []
    for bid, event_unix, mean_24h, last_unix in zip(*(map(number, column) for column in columns), strict=True):
        ratios.append(bid / mean_24h if mean_24h > 0 else math.nan)  # NaN > 0 is False
        minutes.append((event_unix - last_unix) / 60.0)
    return {"bid_to_viewer_mean_24h": ratios, "minutes_since_previous_impression": minutes}


def clicks_features() -> FeatureSet:
    """The ``clicks_model_v1`` feature service. A new feature set is a new service (v2), never an edit."""
    return FeatureSet(
        service="clicks_model_v1",
        streaming=(
            StreamingView(
                VIEWER_AGGREGATES, VIEWER, ttl=_DAY, description="What the viewer was shown (services/features)."
            ),
        ),
        snapshots=(CAMPAIGN_SNAPSHOTS,),
        on_demand=OnDemandView(
            function=bid_context,
            request_source="impression_request",
            request_fields=("bid",),
            inputs=(ViewColumns(VIEWER_AGGREGATES.name, ("bid_mean_24h", VIEWER_AGGREGATES.as_of)),),
            features=(
                FeatureSpec("bid_to_viewer_mean_24h", "float", "The bid over the viewer's 24-hour mean."),
                FeatureSpec(
                    "minutes_since_previous_impression",
                    "float",
                    "Minutes from the viewer's previous impression to this one (null without history).",
                ),
            ),
            request_description="The impression being scored: its bid and event time (Unix seconds).",
        ),
        request_features=("bid", "slot"),
        description="The features of the click-through model, version 1.",
    )
