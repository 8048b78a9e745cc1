"""A feature set with two streaming views of different keys and windows, and what drives the features handler
over it in unit tests: ad impressions aggregated per viewer and per campaign.

The scored stream's records are keyed by the viewer (as Kafka would partition them), so a viewer's
impressions come from one partition and a campaign's from all of them. The views share no window.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from feast.data_source import PushMode
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from berg.contracts._types import CONTRACT_CONFIG, EventId, JsonBool, JsonNumber, SchemaVersion1, UtcDatetime
from berg.contracts.dead_letter import DeadLetterV1
from berg.features.aggregation import AggregationView, WindowedAggregate
from berg.features.feature_set import EVENT_TIMESTAMP, Entity, FeatureSet, StreamingView
from berg.features.label_store import LabelStore
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.records import RawRecord
from berg.kafka.topics import DEAD_LETTER
from berg.usecase import Stream
from berg_features.aggregates import WindowAggregator, WindowEvent
from berg_features.handler import FeaturesHandler, Source, event_from_scored
from berg_features.metrics import FeaturesMetrics
from tests.helpers import RecordingProducer

__all__ = [
    "CAMPAIGN_VIEW",
    "CLICKS",
    "IMPRESSIONS",
    "PARTITIONS",
    "START",
    "TWO_VIEWS",
    "VIEWER_VIEW",
    "Click",
    "Driven",
    "Impression",
    "RecordingStore",
    "drive",
    "impression",
    "oracle_accepts",
    "record",
    "view_events",
]

_MINUTE, _HOUR, _DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
START = datetime(2026, 3, 1, tzinfo=UTC)
PARTITIONS = 3


class Impression(BaseModel):
    """An ad shown to a viewer: the scored event."""

    model_config = CONTRACT_CONFIG

    schema_version: SchemaVersion1 = 1
    event_id: EventId
    event_time: UtcDatetime
    user_id: str
    campaign_id: str
    device: str
    bid: JsonNumber


class Click(BaseModel):
    """Whether an impression was clicked: the label (the handler only stores it)."""

    model_config = CONTRACT_CONFIG

    schema_version: SchemaVersion1 = 1
    event_id: EventId
    event_time: UtcDatetime
    impression_event_id: EventId
    user_id: str
    clicked: JsonBool


IMPRESSIONS = Stream(
    "impressions", Impression, "impressions.raw", "impressions.ingested", "impressions.valid", key="user_id"
)
CLICKS = Stream("clicks", Click, "clicks.raw", "clicks.ingested", "clicks.valid", "user_id")

VIEWER_VIEW = StreamingView(
    AggregationView(
        "viewer_impressions",
        "user_id",
        "viewer_as_of_unix",
        (
            WindowedAggregate("viewer_impressions_1h", "count", _HOUR),
            WindowedAggregate("viewer_bid_sum_6h", "sum", 6 * _HOUR, field="bid"),
            WindowedAggregate("viewer_campaigns_6h", "distinct", 6 * _HOUR, field="campaign_id"),
        ),
    ),
    Entity("viewer", "user_id", "A person ads are shown to."),
    ttl=_DAY,
    description="Per viewer.",
)
CAMPAIGN_VIEW = StreamingView(
    AggregationView(
        "campaign_impressions",
        "campaign_id",
        "campaign_as_of_unix",
        (
            WindowedAggregate("campaign_impressions_30m", "count", 30 * _MINUTE),
            WindowedAggregate("campaign_bid_max_2d", "max", 2 * _DAY, field="bid"),
            WindowedAggregate("campaign_bid_mean_2d", "mean", 2 * _DAY, field="bid"),
            WindowedAggregate("campaign_mobile_share_2d", "share", 2 * _DAY, field="device", value="mobile"),
        ),
    ),
    Entity("campaign", "campaign_id", "An advertiser's campaign."),
    ttl=7 * _DAY,
    description="Per campaign, from every viewer's impressions.",
)
TWO_VIEWS = FeatureSet("ads_v1", (VIEWER_VIEW, CAMPAIGN_VIEW))
"""Checked like any use case's set: the two views' names and features do not clash."""


def impression(index: int, at: datetime, user_id: str, campaign_id: str, *, bid: float = 1.0) -> Impression:
    """Impression number ``index`` (its id follows from it, so a replay has the same id)."""
    return Impression(
        event_id=uuid.UUID(int=index + 1),
        event_time=at,
        user_id=user_id,
        campaign_id=campaign_id,
        device="mobile" if index % 3 else "desktop",
        bid=bid,
    )


def record(event: Impression, offset: int) -> RawRecord:
    """The impression as the valid topic holds it: keyed, so partitioned, by its viewer."""
    partition = int(event.user_id.removeprefix("u")) % PARTITIONS
    return RawRecord(
        IMPRESSIONS.valid_topic, partition, offset, event.user_id.encode(), event.model_dump_json().encode(), (), 0
    )


@dataclass
class RecordingStore:
    """Stands in for Feast's store: records every push per push source and mode, and can fail a push source's
    next pushes (``fail``: how many) and the next reads of online stamps (``reads_down``: how many)."""

    pushes: dict[tuple[str, PushMode], list[pd.DataFrame]] = field(default_factory=lambda: defaultdict(list))
    fail: dict[str, int] = field(default_factory=dict)
    reads_down: int = 0

    def push(self, push_source_name: str, df: pd.DataFrame, *, to: PushMode) -> None:
        if self.fail.get(push_source_name, 0) > 0:
            self.fail[push_source_name] -= 1
            raise ConnectionError(f"push to {push_source_name} refused (the test's fault)")
        self.pushes[(push_source_name, to)].append(df)

    def count(self) -> int:
        return sum(len(frames) for frames in self.pushes.values())

    def offline(self, view: StreamingView) -> dict[tuple[str, int], dict[str, float]]:
        """The view's offline rows as the store keeps them: per (key, event time), the newest push wins."""
        frames = self.pushes.get((view.push_source, PushMode.OFFLINE), [])
        return {
            (str(row[view.entity.key]), _micros(row[EVENT_TIMESTAMP])): row
            for frame in frames
            for row in frame.to_dict("records")
        }

    def online(self, view: StreamingView) -> dict[str, dict[str, float]]:
        """The view's online value per entity: the last pushed (SQLite's online store is last-writer-wins)."""
        return {
            str(row[view.entity.key]): row
            for frame in self.pushes.get((view.push_source, PushMode.ONLINE), [])
            for row in frame.to_dict("records")
        }

    def online_stamps(self, view: StreamingView, keys: Sequence[str]) -> dict[str, int]:
        """Per key, the stamp of its last online row (Redis holds the newest; each entity's stamps increase)."""
        if self.reads_down > 0:
            self.reads_down -= 1
            raise ConnectionError("the online store is down (the test's fault)")
        wanted, held = set(keys), {}
        for frame in self.pushes.get((view.push_source, PushMode.ONLINE), []):
            for row in frame.to_dict("records"):
                if str(row[view.entity.key]) in wanted:
                    held[str(row[view.entity.key])] = _micros(row[EVENT_TIMESTAMP])
        return held

    def online_stamps_increase(self, view: StreamingView) -> bool:
        """Whether each entity's online rows went out with strictly increasing event timestamps, so that Redis,
        which skips a row not newer than the one it holds, ends with the last pushed too."""
        last: dict[str, int] = {}
        for frame in self.pushes.get((view.push_source, PushMode.ONLINE), []):
            for row in frame.to_dict("records"):
                key, stamp = str(row[view.entity.key]), _micros(row[EVENT_TIMESTAMP])
                if stamp <= last.get(key, stamp - 1):
                    return False
                last[key] = stamp
        return True


def _micros(stamp: object) -> int:
    return int(pd.Timestamp(stamp).value // 1000)  # type: ignore[arg-type]


@dataclass
class Driven:
    """A features handler over the two views, its store, label store, dead letters and metrics."""

    handler: FeaturesHandler
    store: RecordingStore
    label_store: LabelStore
    producer: RecordingProducer
    registry: CollectorRegistry

    def dead_letters(self) -> list[tuple[DeadLetterV1, Impression]]:
        """Each dead letter's envelope and the impression it carries, in order."""
        return [
            (DeadLetterV1.from_headers(sent["headers"]), Impression.model_validate_json(sent["value"]))
            for sent in self.producer.to(DEAD_LETTER)
        ]


def drive(
    root: Path,
    lateness: timedelta,
    *,
    views: Sequence[StreamingView] = TWO_VIEWS.streaming,
    store: RecordingStore | None = None,
    eviction_interval_s: float = 60.0,
) -> Driven:
    """A handler over ``views`` with a label store under ``root``; a second one over the same ``root`` and
    ``store`` is the service after a restart."""
    store = store if store is not None else RecordingStore()
    producer, registry = RecordingProducer(), CollectorRegistry()
    label_store = LabelStore(str(root / "label_store"), IMPRESSIONS, CLICKS)
    created = iter(range(1, 1 << 62))
    lateness_us = lateness // timedelta(microseconds=1)
    handler = FeaturesHandler(
        store,
        label_store,
        [(view, WindowAggregator(view.aggregation, lateness_us)) for view in views],
        DeadLetterPublisher(producer, "features"),
        FeaturesMetrics.register(registry),
        scored=Source(IMPRESSIONS.valid_topic, Impression),
        labels=Source(CLICKS.valid_topic, Click),
        # Created timestamps that strictly increase, so "the newest push wins" is well defined.
        clock=lambda: START + timedelta(microseconds=next(created)),
        eviction_interval_s=eviction_interval_s,
    )
    return Driven(handler, store, label_store, producer, registry)


def oracle_accepts(
    arrivals: Sequence[Impression], views: Sequence[StreamingView], lateness: timedelta
) -> list[Impression]:
    """Which arrivals count, in every view: the first sighting of an id, unless it is more than ``lateness``
    behind its entity's latest accepted event in any view."""
    lateness_us = lateness // timedelta(microseconds=1)
    seen: set[str] = set()
    latest: dict[tuple[str, str], int] = {}
    accepted = []
    for arrival in arrivals:
        if str(arrival.event_id) in seen:
            continue
        events = [(view.name, event_from_scored(view.aggregation, arrival)) for view in views]
        if any(latest.get((name, event.key), event.event_us) - event.event_us > lateness_us for name, event in events):
            continue
        seen.add(str(arrival.event_id))
        for name, event in events:
            latest[(name, event.key)] = max(latest.get((name, event.key), event.event_us), event.event_us)
        accepted.append(arrival)
    return accepted


def view_events(view: StreamingView, impressions: Sequence[Impression]) -> list[WindowEvent]:
    """What ``view`` reads of ``impressions``."""
    return [event_from_scored(view.aggregation, event) for event in impressions]
