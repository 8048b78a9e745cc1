"""Serving's feature assembly for another domain: its entities, TTLs, on-demand view and request fields."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from berg_clicks.features import clicks_features
from berg_serving.features import FeatureAssembler
from tests.use_cases import impression

pytestmark = pytest.mark.unit

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_the_assembler_reads_each_views_entity_and_applies_its_ttl_from_its_stamp() -> None:
    assembler = FeatureAssembler(clicks_features())
    shown = [impression(1, NOW, bid=1.5, slot=2), impression(2, NOW, bid=0.4, slot=0)]
    assert assembler.entity_rows(shown) == [
        {"viewer_id": "v-1", "campaign_id": "c-1"},
        {"viewer_id": "v-2", "campaign_id": "c-2"},
    ]
    now = NOW.timestamp()
    online = {
        # The first viewer was seen 10 minutes ago; the second's row is older than the view's 1-day TTL.
        "impressions_1h": [3, 9],
        "bid_mean_24h": [0.5, 0.8],
        "campaigns_24h": [2, 4],
        "mobile_share_24h": [0.5, 1.0],
        "last_impression_unix": [now - 600, now - timedelta(days=2).total_seconds()],
        # The first campaign's snapshot is unknown; the second's became available an hour ago.
        "campaign_impressions_6h": [None, 120],
        "campaign_click_rate_1d": [None, 0.04],
        "campaign_snapshot_unix": [None, now - 7200],
        "campaign_available_unix": [None, now - 3600],
    }
    frame = assembler.assemble(shown, online)
    assert frame.known["viewer"].tolist() == [True, False]
    assert frame.known["campaign"].tolist() == [False, True]
    assert frame.default_features_used.tolist() == [True, True]
    assert list(frame.columns) == list(assembler.servable) == list(clicks_features().model_features)
    assert frame.columns["impressions_1h"][0] == 3
    assert math.isnan(frame.columns["impressions_1h"][1])
    assert math.isnan(frame.columns["campaign_click_rate_1d"][0])
    assert frame.columns["campaign_click_rate_1d"][1] == 0.04
    # The on-demand view, from the request's bid and time and the viewer's (usable) row.
    assert frame.columns["bid_to_viewer_mean_24h"][0] == pytest.approx(3.0)
    assert frame.columns["minutes_since_previous_impression"][0] == pytest.approx(10.0)
    assert math.isnan(frame.columns["bid_to_viewer_mean_24h"][1])
    assert frame.columns["bid"].tolist() == [1.5, 0.4]
    assert frame.columns["slot"].tolist() == [2.0, 0.0]
    assert set(assembler.online_refs) == {
        f"{view.name}:{spec.name}" for view in clicks_features().views for spec in view.features
    }
