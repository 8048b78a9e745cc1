"""Champion against shadow on the same requests: the exported gauges equal a brute-force computation
(:mod:`shadow_traffic`), for each use case; a shadow record that breaks its contract is dead-lettered."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from services.monitoring.tests.shadow_traffic import (
    CHAMPION,
    SETTINGS,
    SHADOWS,
    Traffic,
    brute_force,
    label_of,
    traffic,
)

from berg.contracts.dead_letter import DeadLetterV1
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.records import RawRecord
from berg.registry import ModelRegistry
from berg.usecase import UseCase
from berg_clicks.use_case import clicks
from berg_fraud.use_case import fraud
from berg_monitoring.drift_window import DriftSpec
from berg_monitoring.exporter import Exporter
from berg_monitoring.metrics import MonitoringMetrics, SnapshotCollector
from berg_monitoring.references import ReferenceBook
from berg_monitoring.settings import MonitoringSettings
from berg_monitoring.shadow_comparison import compare_shadows
from berg_monitoring.shadow_window import ShadowWindows
from berg_monitoring.snapshot import Snapshot
from berg_monitoring.statistics import binned_reference
from berg_monitoring.windows import MonitoringState
from berg_pipelines.runtime.profile import distribution_profile
from tests.helpers import RecordingProducer

pytestmark = pytest.mark.unit


def state_of(use_case: UseCase, sent: Traffic) -> MonitoringState:
    """The champion's join, fed prediction by prediction with the labels due by then (one partition each)."""
    state = MonitoringState(
        drift=DriftSpec(1000, cycle_s=0),
        quality_window=1000,
        pending_capacity=10_000,
        label_history=10_000,
        max_versions=4,
        label_horizon_s=sent.horizon_s,
        amount_feature=None,
    )
    labels = sorted(sent.labels, key=lambda label: label.event_time)
    for prediction in sent.predictions:
        while labels and labels[0].event_time <= prediction.scored_event_time:
            state.add_label(labels.pop(0))
        state.add_prediction(prediction)
    for label in labels:
        state.add_label(label)
    return state


def exported(use_case: UseCase, windows: ShadowWindows, state: MonitoringState) -> Callable[..., float | None]:
    collector = SnapshotCollector(use_case.name, 1, currency="EUR")
    collector.publish(Snapshot((), None, compare_shadows(windows, state.resolution, SETTINGS)))
    registry = CollectorRegistry()
    registry.register(collector)

    def sample(name: str, shadow: str, **labels: str) -> float | None:
        pair = {"model": use_case.name, "champion_version": CHAMPION, "shadow_version": shadow}
        return registry.get_sample_value(f"berg_monitoring_shadow_{name}", {**pair, **labels})

    return sample


@pytest.mark.parametrize("use_case", [fraud(), clicks()], ids=lambda u: u.name)
@pytest.mark.parametrize("capacity", [10_000, 150], ids=["whole", "evicting"])
def test_shadow_gauges_equal_a_brute_force_computation(use_case: UseCase, capacity: int) -> None:
    sent = traffic(use_case, np.random.default_rng(len(use_case.name) + capacity))
    state = state_of(use_case, sent)
    windows = ShadowWindows(capacity, max_pairs=4)
    for record in sent.shadows:
        assert windows.add(record)
    for record in sent.shadows[-50:]:
        assert not windows.add(record), "a replayed record (of a request still held) changes nothing"
    sample = exported(use_case, windows, state)

    for (_, shadow), gauges in brute_force(sent, capacity).items():
        # The traffic holds what the test is about: flips, settled and unsettled requests, both classes.
        assert 0 < gauges["decision_flips"] < gauges["predictions"]
        assert 0 < gauges["labelled"] < gauges["predictions"]
        for name in ("predictions", "labelled", "decision_agreement", "decision_flips", "score_psi"):
            assert sample(name, shadow) == pytest.approx(gauges[name], rel=1e-9), name
        assert sample("quality_sufficient", shadow) == float("champion" in gauges)
        assert "champion" in gauges or capacity < 1000
        for role in ("champion", "shadow"):
            assert sample("pr_auc", shadow, role=role) == pytest.approx(gauges.get(role), rel=1e-9), role


def test_pr_auc_is_absent_unless_the_settled_labels_hold_both_classes() -> None:
    use_case = fraud()
    sent = traffic(use_case, np.random.default_rng(3))
    # Every request positive within the horizon: enough labels and positives by the quality window's rule, but
    # a single class, whose PR-AUC is 1 whatever the scores.
    sent.labels = [
        label_of(use_case, p.scored_event_id, True, p.scored_event_time + timedelta(hours=1)) for p in sent.predictions
    ]
    state = state_of(use_case, sent)
    windows = ShadowWindows(10_000, max_pairs=4)
    for record in sent.shadows:
        windows.add(record)
    compared = compare_shadows(windows, state.resolution, SETTINGS)
    assert [(c.positives == c.labelled >= SETTINGS.min_labels, c.quality_sufficient) for c in compared] == [
        (True, False),
        (True, False),
    ]
    sample = exported(use_case, windows, state)
    for shadow in SHADOWS:
        assert sample("quality_sufficient", shadow) == 0
        assert sample("pr_auc", shadow, role="champion") is None
        assert sample("pr_auc", shadow, role="shadow") is None


def test_score_psi_bins_the_champion_scores_as_the_reference_profile_does() -> None:
    values = np.random.default_rng(5).beta(2, 6, 997)
    profile = distribution_profile(values)
    binned = binned_reference(values)
    assert binned.edges.tolist() == profile["edges"]
    assert binned.shares.tolist() == pytest.approx(profile["shares"])
    assert binned.missing_share == profile["missing_share"]


def test_only_the_pairs_seen_most_recently_keep_a_window_and_silenced_champions_are_left_out() -> None:
    sent = traffic(fraud(), np.random.default_rng(9), rows=60)
    windows = ShadowWindows(100, max_pairs=2)
    for n, record in enumerate(sent.shadows):
        windows.add(record.model_copy(update={"shadow_version": f"v{n % 3 + 2:04d}"}) if n < 3 else record)
    assert set(windows.pairs) == {(CHAMPION, "v0002"), (CHAMPION, "v0003")}
    state = state_of(fraud(), sent)
    assert compare_shadows(windows, state.resolution, SETTINGS, silenced=frozenset({CHAMPION})) == ()


class _NoPartitions:
    """A reader with nothing assigned: the test hands records to :meth:`Exporter.apply` itself."""

    def assignment(self) -> set[Any]:
        return set()

    def end_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        return {}


def test_a_shadow_record_that_breaks_the_contract_is_dead_lettered_with_its_reason(tmp_path: Path) -> None:
    use_case = fraud()
    settings = MonitoringSettings(
        registry_uri=str(tmp_path / "registry"), predictions_topic="p", labels_topic="l", shadow_predictions_topic="s"
    )
    producer = RecordingProducer()
    registry = CollectorRegistry()
    exporter = Exporter(
        settings,
        _NoPartitions(),
        ReferenceBook(ModelRegistry(settings.registry_uri), "fraud", settings.registry_poll_s),
        use_case.card,
        SnapshotCollector("fraud", 1, currency="EUR"),
        MonitoringMetrics.register(registry),
        DeadLetterPublisher(producer, "monitoring"),
        use_case=use_case,
        model_name="fraud",
    )
    good = traffic(use_case, np.random.default_rng(1), rows=5).shadows[0]
    broken = good.model_dump(mode="json") | {"score": 1.5}

    def record(offset: int, value: bytes) -> RawRecord:
        return RawRecord("s", 0, offset, b"k", value, (), 0)

    exporter.apply([record(0, good.model_dump_json().encode()), record(1, b"{not json")])
    exporter.apply([record(2, json.dumps(broken).encode())])

    assert len(exporter.shadows.pairs[(CHAMPION, good.shadow_version)]) == 1
    letters = [DeadLetterV1.from_headers(sent["headers"]) for sent in producer.to("berg.dlq")]
    assert [(d.reason, d.original_topic, d.original_offset) for d in letters] == [
        ("undecodable", "s", 1),
        ("contract_violation", "s", 2),
    ]
    assert "score" in letters[1].error_message
    assert registry.get_sample_value("berg_monitoring_invalid_records_total", {"topic": "s"}) == 2
