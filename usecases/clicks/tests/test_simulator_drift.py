"""The drift scenario's right answer: ``site_redesign`` moves the inputs and reverses what predicts a click.

The model here reads the clicks model's own features (the request's slot and bid, the viewer's
streaming aggregates and the on-demand ones), computed from the stream the way their declarations
say; the campaign's snapshot is left out (it needs the label store), so the campaign's pull is noise.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict, deque
from datetime import datetime

import numpy as np
import pytest
import xgboost
from usecases.clicks.tests.streams import ONSET

from berg.problem.metrics import average_precision, roc_auc
from berg.simulator.traffic import SimulatedEvent

pytestmark = pytest.mark.unit

FEATURES = (
    "slot",
    "bid",
    "impressions_1h",
    "mobile_share_24h",
    "bid_to_viewer_mean_24h",
    "minutes_since_previous_impression",
)


Row = tuple[datetime, list[float], bool]
"""An impression's time, its features in the order of :data:`FEATURES`, and whether it was clicked."""


def feature_rows(events: list[SimulatedEvent]) -> list[Row]:
    """Each impression's time, features and whether it was clicked.

    A viewer's aggregates at an impression cover their impressions in the window up to and
    including it, as ``berg.features.aggregation`` defines them."""
    seen: defaultdict[str, deque[tuple[float, float, bool]]] = defaultdict(deque)
    rows: list[Row] = []
    for event in events:
        if event.kind != "scored":
            continue
        impression = json.loads(event.value)
        at = event.event_time.timestamp()
        history = seen[impression["viewer_id"]]
        previous = history[-1][0] if history else math.nan
        while history and history[0][0] <= at - 86_400:
            history.popleft()
        history.append((at, impression["bid"], impression["device"] == "mobile"))
        features = [
            float(impression["slot"]),
            impression["bid"],
            float(sum(1 for time, _, _ in history if time > at - 3_600)),
            sum(mobile for _, _, mobile in history) / len(history),
            impression["bid"] / (sum(bid for _, bid, _ in history) / len(history)),
            (at - previous) / 60.0,
        ]
        rows.append((event.event_time, features, event.truth.positive))
    return rows


def click_rates_by_slot(rows: list[Row]) -> list[float]:
    shown, clicked = [0] * 4, [0] * 4
    for _, features, positive in rows:
        slot = int(features[FEATURES.index("slot")])
        shown[slot] += 1
        clicked[slot] += positive
    return [c / s for c, s in zip(clicked, shown, strict=True)]


def share(rows: list[Row], feature: str, above: float) -> float:
    return sum(features[FEATURES.index(feature)] > above for _, features, _ in rows) / len(rows)


@pytest.fixture(scope="module")
def before_and_after(drift_stream: list[SimulatedEvent]) -> tuple[list[Row], list[Row]]:
    rows = feature_rows(drift_stream)
    return [row for row in rows if row[0] < ONSET], [row for row in rows if row[0] >= ONSET]


def test_the_slot_order_of_click_through_reverses_at_the_onset(before_and_after: tuple[list[Row], list[Row]]) -> None:
    before, after = (click_rates_by_slot(rows) for rows in before_and_after)
    assert before == sorted(before, reverse=True), "before: the top slot is clicked most"
    assert after == sorted(after), "after: the last slot, a sticky banner now, is clicked most"
    assert before[0] > 3 * before[3]
    assert after[3] > 3 * after[0]


def test_the_inputs_move_and_the_click_through_falls(before_and_after: tuple[list[Row], list[Row]]) -> None:
    before, after = before_and_after
    assert len(after) > 1.5 * len(before), "mobile viewers browse 2.5 times as much"
    assert share(after, "mobile_share_24h", 0.5) > share(before, "mobile_share_24h", 0.5) + 0.15
    assert share(after, "slot", 1.5) > share(before, "slot", 1.5) + 0.15, "slots are served evenly"
    assert share(after, "impressions_1h", 2.5) > 1.5 * share(before, "impressions_1h", 2.5)
    rate_before = sum(positive for *_, positive in before) / len(before)
    rate_after = sum(positive for *_, positive in after) / len(after)
    assert rate_before > 1.3 * rate_after, "tired viewers: fatigue bites twice as hard on more impressions"


def test_a_model_trained_before_the_onset_loses_to_one_trained_after_it(
    before_and_after: tuple[list[Row], list[Row]],
) -> None:
    before, after = before_and_after
    old_world, new_world, judged_on = before[-3_000:], after[:3_000], after[3_000:6_000]

    def trained(rows: list[Row]) -> xgboost.XGBClassifier:
        model = xgboost.XGBClassifier(n_estimators=100, max_depth=3, learning_rate=0.1, n_jobs=1, random_state=0)
        model.fit(np.array([f for _, f, _ in rows]), np.array([p for *_, p in rows], dtype=int))
        return model

    x = np.array([features for _, features, _ in judged_on])
    y = np.array([positive for *_, positive in judged_on], dtype=int)
    old, new = (trained(rows).predict_proba(x)[:, 1] for rows in (old_world, new_world))
    assert roc_auc(y, new) > roc_auc(y, old) + 0.1
    assert average_precision(y, new) > average_precision(y, old)
    assert roc_auc(y, old) < 0.6, "the old model ranks the slots the wrong way round"
    # ...and in its own world the old model beats the constant baseline clearly.
    old_test = before[:-3_000]
    x_old = np.array([features for _, features, _ in old_test])
    y_old = np.array([positive for *_, positive in old_test], dtype=int)
    assert roc_auc(y_old, trained(old_world).predict_proba(x_old)[:, 1]) > 0.6
