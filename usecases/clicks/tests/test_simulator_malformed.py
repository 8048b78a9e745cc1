"""The ``malformed`` scenario: each malformed class is refused by the stage it names, and nothing else moves."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from usecases.clicks.tests.streams import ONSET, START

from berg.contracts.rules import violations
from berg.kafka.decoding import RecordRejected, decode_contract
from berg.kafka.records import RawRecord
from berg.simulator.traffic import MALFORMED_CLASS_HEADER, SimulatedEvent
from berg_clicks.contracts import ImpressionV1
from berg_clicks.rules import ClicksRules
from berg_clicks.simulator import ClicksSimulator
from berg_clicks.simulator.malformed import FUTURE_OFFSET, MALFORMED_CLASSES, future_event_time

pytestmark = pytest.mark.unit

RULES = ClicksRules()


def malformed(events: list[SimulatedEvent]) -> list[SimulatedEvent]:
    return [event for event in events if event.kind == "malformed"]


def test_the_simulator_declares_each_class_with_its_refusing_stage() -> None:
    declared = ClicksSimulator().malformed_classes
    assert dict(declared) == {name: kind.stage for name, kind in MALFORMED_CLASSES.items()}
    for kind in MALFORMED_CLASSES.values():
        assert (kind.reason is None) is (kind.stage == "validation") is (kind.field is not None)


def test_a_share_of_impressions_from_the_onset_on_are_malformed_records_of_every_class(
    malformed_stream: list[SimulatedEvent],
) -> None:
    bad = malformed(malformed_stream)
    assert min(event.event_time for event in bad) >= ONSET
    after = [e for e in malformed_stream if e.event_time >= ONSET and e.kind in ("scored", "malformed")]
    assert 0.15 < len(bad) / len(after) < 0.25, "the plan's share, 0.2"
    assert set(Counter(event.truth.malformed_class for event in bad)) == set(MALFORMED_CLASSES)
    for event in bad:
        assert dict(event.headers)[MALFORMED_CLASS_HEADER] == str(event.truth.malformed_class).encode()
        assert event.truth.label_due is None
    labelled = {event.truth.subject_id for event in malformed_stream if event.kind == "label"}
    assert not labelled & {event.truth.subject_id for event in bad}, "a refused impression gets no label"


@pytest.mark.parametrize("name", sorted(MALFORMED_CLASSES))
def test_each_class_is_refused_by_its_stage_for_its_reason(name: str, malformed_stream: list[SimulatedEvent]) -> None:
    kind = MALFORMED_CLASSES[name]
    found = [event for event in malformed(malformed_stream) if event.truth.malformed_class == name]
    assert found
    for event in found:
        record = RawRecord(event.topic, 0, 0, event.key, event.value, event.headers, 0)
        if kind.stage == "ingestion":
            with pytest.raises(RecordRejected) as refused:
                decode_contract(ImpressionV1, record)
            assert refused.value.reason == kind.reason
        else:
            impression = decode_contract(ImpressionV1, record)
            broken = violations(RULES.value_rules("impressions"), impression, event.event_time)
            assert [violation.field for violation in broken] == [kind.field]


def test_malformed_records_leave_every_other_record_as_the_baseline_has_it(
    baseline_stream: list[SimulatedEvent], malformed_stream: list[SimulatedEvent]
) -> None:
    replaced = {event.truth.subject_id for event in malformed(malformed_stream)}
    kept = [(e.topic, e.key, e.value, e.event_time) for e in malformed_stream if e.kind != "malformed"]
    expected = [(e.topic, e.key, e.value, e.event_time) for e in baseline_stream if e.truth.subject_id not in replaced]
    assert kept == expected
    assert len(replaced) > 400


def test_a_future_event_time_lies_past_the_reference_wall_clock() -> None:
    impression = ImpressionV1(
        event_id=uuid.UUID(int=1),
        event_time=START,
        viewer_id="viewer-00001",
        campaign_id="campaign-001",
        placement="feed",
        device="desktop",
        bid=0.5,
        slot=1,
    )
    wall_clock = START + timedelta(days=90)
    late = ImpressionV1.model_validate_json(future_event_time(impression, random.Random(1), wall_clock))
    assert late.event_time == wall_clock + FUTURE_OFFSET
    assert [v.field for v in violations(RULES.value_rules("impressions"), late, wall_clock)] == ["event_time"]
