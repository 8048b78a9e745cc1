"""Both streaming views of a two-view feature set land in Feast: the handler over a real embedded store.

The service process resolves an installed use case, and only the fraud case (one streaming view) is
installed; so this drives the service's own handler in-process, over the store ``prepare_store`` registers
the two-view set in, with a late impression that corrects both views' latest rows.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from services.features.tests.two_views import (
    CLICKS,
    IMPRESSIONS,
    START,
    TWO_VIEWS,
    Click,
    Impression,
    impression,
    oracle_accepts,
    record,
    view_events,
)

from berg.features.label_store import LabelStore
from berg.features.store import close_store, open_store, prepare_store
from berg.features.store_config import FeatureStoreConfig
from berg.kafka.dead_letter import DeadLetterPublisher
from berg_features.aggregates import WindowAggregator
from berg_features.handler import FeaturesHandler, Source
from berg_features.metrics import FeaturesMetrics
from berg_features.streamed_view import FeastTarget
from tests.feature_oracle import assert_rows_equal, declared_oracle

pytestmark = pytest.mark.integration

LATENESS = timedelta(hours=1)


def test_both_views_land_in_feasts_online_store_each_under_its_own_key(tmp_path: Path) -> None:
    store = open_store(FeatureStoreConfig.embedded(tmp_path / "state"))
    try:
        prepare_store(store, TWO_VIEWS, str(tmp_path / "offline"))
        handler = FeaturesHandler(
            FeastTarget(store),
            LabelStore(str(tmp_path / "label_store"), IMPRESSIONS, CLICKS),
            [
                (view, WindowAggregator(view.aggregation, LATENESS // timedelta(microseconds=1)))
                for view in TWO_VIEWS.streaming
            ],
            DeadLetterPublisher(None, "features"),
            FeaturesMetrics.register(CollectorRegistry()),
            scored=Source(IMPRESSIONS.valid_topic, Impression),
            labels=Source(CLICKS.valid_topic, Click),
        )
        stream = [
            impression(i, START + timedelta(minutes=10 * i), f"u{i % 3}", f"c{i % 2}", bid=1.5 * i + 1)
            for i in range(12)
        ]
        late = impression(12, START + timedelta(minutes=95), "u2", "c1", bid=40.0)  # behind both views' latest rows
        records = [record(event, offset) for offset, event in enumerate([*stream, late])]
        handler(records[:6])
        handler(records[6:])

        accepted = oracle_accepts([*stream, late], TWO_VIEWS.streaming, LATENESS)
        assert late in accepted
        for view in TWO_VIEWS.streaming:
            events = view_events(view, accepted)
            latest = {event.key: event.event_us for event in sorted(events)}
            names = [spec.name for spec in view.features]
            online = store.get_online_features(
                features=[f"{view.name}:{name}" for name in names],
                entity_rows=[{view.entity.key: key} for key in sorted(latest)],
            ).to_dict()
            for index, key in enumerate(sorted(latest)):
                values = {name: online[name][index] for name in names}
                expected = declared_oracle(view.aggregation, events, key, latest[key])
                assert_rows_equal(values, expected, f"{view.name} {key}", names=set(names))
    finally:
        close_store(store)
