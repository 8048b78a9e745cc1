"""The clicks simulator's stream: reproducible by seed, in event-time order, every record valid, one label each."""

from __future__ import annotations

import itertools
import json
import statistics
from collections import Counter
from datetime import timedelta

import pytest
from usecases.clicks.tests.streams import END, ONSET, SMALL, START, stream

from berg.contracts.rules import duplicated, violations
from berg.kafka.decoding import decode_contract
from berg.kafka.records import RawRecord
from berg.simulator.traffic import SCENARIO_HEADER, SimulatedEvent, TrafficPlan
from berg_clicks.attribution import ATTRIBUTION_WINDOW
from berg_clicks.contracts import ClickV1, ImpressionV1
from berg_clicks.rules import ClicksRules
from berg_clicks.simulator import ClicksSimulator
from berg_clicks.topics import CLICKS_RAW, IMPRESSIONS_RAW

pytestmark = pytest.mark.unit

RULES = ClicksRules()


def record(event: SimulatedEvent) -> RawRecord:
    return RawRecord(event.topic, 0, 0, event.key, event.value, event.headers, 0)


def wire(events: list[SimulatedEvent]) -> list[tuple[object, ...]]:
    """What a consumer would see of each record, and the truth behind it."""
    return [(e.topic, e.key, e.value, e.headers, e.event_time, e.kind, e.truth) for e in events]


def test_the_same_plan_gives_the_same_records_and_another_seed_others() -> None:
    plan = TrafficPlan(start=START, scenario="site_redesign", onset=START + timedelta(hours=6), seed=3)
    first = list(itertools.islice(SMALL.events(plan), 3_000))
    assert wire(first) == wire(list(itertools.islice(SMALL.events(plan), 3_000)))
    assert wire(first) == wire(list(itertools.islice(ClicksSimulator(viewers=400).events(plan), 3_000)))
    other = TrafficPlan(start=START, scenario="site_redesign", onset=START + timedelta(hours=6), seed=4)
    assert [e.value for e in itertools.islice(SMALL.events(other), 100)] != [e.value for e in first[:100]]


def test_an_onset_that_changes_nothing_leaves_the_stream_as_it_was(baseline_stream: list[SimulatedEvent]) -> None:
    without_onset = stream(SMALL, TrafficPlan(start=START, scenario="baseline", seed=11))
    assert wire(without_onset) == wire(baseline_stream)


def test_records_come_in_event_time_order(
    baseline_stream: list[SimulatedEvent], drift_stream: list[SimulatedEvent]
) -> None:
    for events in (baseline_stream, drift_stream):
        times = [event.event_time for event in events]
        assert times == sorted(times)
        assert times[0] >= START


def test_every_record_decodes_against_its_contract_and_breaks_no_value_rule(
    baseline_stream: list[SimulatedEvent], drift_stream: list[SimulatedEvent]
) -> None:
    for events in (baseline_stream, drift_stream):
        decoded: dict[str, list[ImpressionV1 | ClickV1]] = {"impressions": [], "clicks": []}
        for event in events:
            stream_name, contract = ("impressions", ImpressionV1) if event.kind == "scored" else ("clicks", ClickV1)
            assert event.topic == (IMPRESSIONS_RAW if event.kind == "scored" else CLICKS_RAW)
            model = decode_contract(contract, record(event))
            assert event.key == model.viewer_id.encode("utf-8")
            assert model.event_time == event.event_time
            # The producer's clock is the record's own event time: nothing from its future.
            assert violations(RULES.value_rules(stream_name), model, event.event_time) == [], event
            decoded[stream_name].append(model)
        for stream_name, models in decoded.items():
            assert duplicated(RULES.value_rules(stream_name), models) == {}


def test_the_impressions_fit_the_batch_bounds(
    baseline_stream: list[SimulatedEvent], drift_stream: list[SimulatedEvent]
) -> None:
    bounds = RULES.batch
    for events in (baseline_stream, drift_stream):
        shown = [json.loads(event.value) for event in events if event.kind == "scored"]
        bids = [impression["bid"] for impression in shown]
        assert bounds.bid_mean[0] <= statistics.fmean(bids) <= bounds.bid_mean[1]
        assert bounds.bid_p95[0] <= statistics.quantiles(bids, n=20)[-1] <= bounds.bid_p95[1]
        mobile = sum(impression["device"] == "mobile" for impression in shown) / len(shown)
        assert bounds.mobile_share[0] <= mobile <= bounds.mobile_share[1]
        top_campaign = Counter(impression["campaign_id"] for impression in shown).most_common(1)[0][1]
        assert top_campaign / len(shown) <= bounds.max_campaign_share


def test_every_impression_gets_one_label_within_the_window_at_the_click_or_the_close(
    baseline_stream: list[SimulatedEvent],
) -> None:
    labels: dict[str, list[tuple[SimulatedEvent, ClickV1]]] = {}
    for event in baseline_stream:
        if event.kind == "label":
            label = ClickV1.model_validate_json(event.value)
            labels.setdefault(str(label.impression_event_id), []).append((event, label))
    settled = [e for e in baseline_stream if e.kind == "scored" and e.event_time < END - ATTRIBUTION_WINDOW]
    assert len(settled) > 4_000
    for event in settled:
        impression = ImpressionV1.model_validate_json(event.value)
        [(label_event, label)] = labels.pop(str(impression.event_id))
        delay = label.event_time - impression.event_time
        assert timedelta(0) < delay <= ATTRIBUTION_WINDOW
        assert label.clicked is event.truth.positive is label_event.truth.positive
        assert (delay == ATTRIBUTION_WINDOW) is not label.clicked, "a negative label comes at the window's close"
        assert label.viewer_id == impression.viewer_id
        assert label.event_time == event.truth.label_due
    # No label without its impression: what is left are the labels of the last half hour's impressions.
    cutoff = END - ATTRIBUTION_WINDOW
    last_half_hour = {e.truth.subject_id for e in baseline_stream if e.kind == "scored" and e.event_time >= cutoff}
    assert set(labels) <= last_half_hour
    clicked = sum(event.truth.positive for event in settled) / len(settled)
    assert 0.03 < clicked < 0.12, "a few per cent of impressions are clicked"


def test_every_record_says_the_scenario_in_force_at_its_time(malformed_stream: list[SimulatedEvent]) -> None:
    for event in malformed_stream:
        expected = "malformed" if event.event_time >= ONSET else "baseline"
        assert dict(event.headers)[SCENARIO_HEADER] == expected.encode() == event.truth.scenario.encode()


def test_a_few_weeks_at_the_defaults_are_tens_of_thousands_of_impressions() -> None:
    simulator = ClicksSimulator()
    span = simulator.expected_span(TrafficPlan(start=START), 30_000)
    assert timedelta(days=10) < span < timedelta(days=25)


def test_the_expected_span_is_what_the_stream_takes() -> None:
    plan = TrafficPlan(start=START, seed=2)
    scored = sum(event.kind == "scored" for event in stream(SMALL, plan, START + timedelta(days=3)))
    assert SMALL.expected_span(plan, scored) == pytest.approx(timedelta(days=3), rel=0.05)
