"""Validation knows no use case: another domain's streams are judged by that use case's own rules.

The clicks use case (``usecases/clicks``) has other contracts, stream names, topics,
an integer column, and value and batch rules of its own; nothing in ``berg_validation`` changes.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from services.validation.tests.helpers import NOW

from berg.contracts.dead_letter import DeadLetterV1
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.producer import encode_event
from berg.kafka.records import RawRecord
from berg.settings import SettingsError, load_settings
from berg_clicks.rules import ClicksBatchBounds, ClicksRules
from berg_clicks.use_case import clicks
from berg_validation.frames import build_frame
from berg_validation.handler import ValidationHandler, ValidationMetrics
from berg_validation.pandas_rules import PandasRules
from berg_validation.settings import ValidationSettings
from berg_validation.suites import Suites, build_suites, create_context
from tests.helpers import RecordingProducer
from tests.use_cases import impression

pytestmark = pytest.mark.unit

CLICKS = clicks()
RULES = ClicksRules(batch=ClicksBatchBounds(min_rows=20))


@pytest.fixture(scope="module")
def engines() -> tuple[Suites, PandasRules]:
    return build_suites(create_context(), CLICKS.streams, RULES), PandasRules(CLICKS.streams, RULES)


def test_the_use_cases_value_rules_dead_letter_its_rows_by_name_on_both_engines(
    engines: tuple[Suites, PandasRules],
) -> None:
    events = [impression(n, NOW) for n in range(30)]
    events[3] = impression(3, NOW, bid=0.0)
    events[7] = impression(7, NOW, placement="popup")
    events[9] = impression(9, NOW, event_id=events[8].event_id)
    frame = build_frame(CLICKS.scored, events)
    for engine in engines:
        verdict = engine.validate(frame, "impressions", NOW)
        assert verdict.row_failures == {
            3: ("expect_column_values_to_be_between(bid)",),
            7: ("expect_column_values_to_be_in_set(placement)",),
            8: ("expect_column_values_to_be_unique(event_id)",),
            9: ("expect_column_values_to_be_unique(event_id)",),
        }, type(engine).__name__
        assert verdict.batch_failures == ()
        assert verdict.batch_checked


@pytest.mark.parametrize(
    ("override", "broken"),
    [
        ({"device": "desktop"}, "expect_column_values_to_be_in_set(device)[mobile_min_share]"),
        ({"bid": 9.0}, "expect_column_mean_to_be_between(bid)"),
        ({"campaign_id": "c-only"}, "expect_column_top_value_share_to_be_between(campaign_id)"),
    ],
)
def test_the_use_cases_batch_rules_quarantine_a_batch_no_healthy_upstream_sends(
    engines: tuple[Suites, PandasRules], override: dict[str, object], broken: str
) -> None:
    frame = build_frame(CLICKS.scored, [impression(n, NOW, **override) for n in range(30)])
    for engine in engines:
        verdict = engine.validate(frame, "impressions", NOW)
        assert broken in verdict.batch_failures, type(engine).__name__
        assert verdict.quarantined


def test_a_stream_without_declared_rules_gets_the_common_ones(engines: tuple[Suites, PandasRules]) -> None:
    suites, _ = engines
    names = [rule.name for rule in suites.catalogue("clicks").at("row") if "of_type" not in rule.name]
    assert "expect_column_values_to_be_between(event_time)" in names
    assert "expect_column_values_to_be_unique(event_id)" in names
    assert not suites.catalogue("clicks").at("passed_rows")[1:], "no batch rules beyond the passed share"


def test_the_handler_reads_the_use_cases_topics_and_forwards_to_its_valid_topic(
    engines: tuple[Suites, PandasRules],
) -> None:
    producer, registry = RecordingProducer(), CollectorRegistry()
    handler = ValidationHandler(
        engines[0],
        CLICKS.streams,
        producer,
        DeadLetterPublisher(producer, "validation"),
        ValidationMetrics.register(registry),
        clock=lambda: NOW,
    )
    assert handler.topics == ["impressions.ingested", "clicks.ingested"]
    good = RawRecord("impressions.ingested", 0, 0, b"u", encode_event(impression(1, NOW)), (), 0)
    stray = RawRecord("transactions.ingested", 0, 0, b"u", encode_event(impression(2, NOW)), (), 0)
    handler([good, stray])
    assert [sent["value"] for sent in producer.to("impressions.valid")] == [good.value]
    [dead] = producer.to("berg.dlq")
    assert DeadLetterV1.from_headers(dead["headers"]).reason == "unknown_topic"
    assert registry.get_sample_value("berg_validation_rows_total", {"kind": "impressions", "outcome": "passed"}) == 1


def test_the_settings_read_the_use_cases_rule_parameters_and_refuse_another_cases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BERG_VALIDATION_RULES__MAX_BID", "12.5")
    monkeypatch.setenv("BERG_VALIDATION_RULES__BATCH__BID_MEAN", "[0.1, 2]")
    settings = load_settings(ValidationSettings[ClicksRules])
    assert isinstance(settings.rules, ClicksRules)
    assert (settings.rules.max_bid, settings.rules.batch.bid_mean) == (12.5, (0.1, 2.0))
    monkeypatch.setenv("BERG_VALIDATION_RULES__MAX_AMOUNT", "100")
    with pytest.raises(SettingsError, match="BERG_VALIDATION_RULES__MAX_AMOUNT"):
        load_settings(ValidationSettings[ClicksRules])
