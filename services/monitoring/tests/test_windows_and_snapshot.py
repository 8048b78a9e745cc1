"""The exporter's state and snapshot: the join of labels to predictions, bounded windows, what is exported."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from berg.contracts import LabelV1
from berg.contracts.predictions import PredictionV1
from berg.problem.card import load_problem_card
from berg_monitoring.metrics import SnapshotCollector
from berg_monitoring.snapshot import Reference, SnapshotSettings, compute_snapshot
from berg_monitoring.statistics import ReferenceProfile, feature_drift
from berg_monitoring.windows import MonitoringState, Ring
from berg_pipelines.runtime.profile import distribution_profile

pytestmark = pytest.mark.unit

T0 = datetime(2026, 6, 1, tzinfo=UTC)
COSTS = load_problem_card().costs


def state(**overrides: int) -> MonitoringState:
    options = {
        "drift_window": 50,
        "quality_window": 40,
        "pending_capacity": 100,
        "label_history": 1000,
        "label_horizon_s": 30 * 86_400.0,
    }
    return MonitoringState(**{**options, "max_versions": 2, **overrides})


def prediction(
    n: int, *, version: str = "v0001", x: float = 1.0, amount: float = 10.0, score: float = 0.5, **extra: Any
) -> PredictionV1:
    return PredictionV1(
        event_id=uuid.uuid4(),
        event_time=T0 + timedelta(seconds=n),
        transaction_event_id=uuid.UUID(int=n + 1, version=4),
        user_id="u-1",
        merchant_id="m-1",
        model_name="fraud",
        model_version=version,
        features={"x": x, "amount": amount, **extra},
        score=score,
        threshold=0.5,
        decision="review" if score >= 0.5 else "approve",
    )


def label(n: int, fraud: bool, *, delay: timedelta = timedelta(days=2)) -> LabelV1:
    return LabelV1(
        event_id=uuid.uuid4(),
        event_time=T0 + timedelta(seconds=n) + delay,
        transaction_event_id=uuid.UUID(int=n + 1, version=4),
        user_id="u-1",
        is_fraud=fraud,
    )


def test_ring_keeps_the_most_recent_rows_oldest_first() -> None:
    ring = Ring(3, 1)
    for value in range(5):
        ring.append([value])
    assert len(ring) == 3
    assert ring.rows()[:, 0].tolist() == [2, 3, 4]


def test_labels_join_their_prediction_in_either_order_and_replays_change_nothing() -> None:
    monitored = state()
    monitored.add_prediction(prediction(1, score=0.9, amount=100))
    joined = monitored.add_label(label(1, True, delay=timedelta(hours=5)))
    assert joined.joined
    assert joined.delay_s == pytest.approx(5 * 3600)
    early = monitored.add_label(label(2, False))  # label first: waits
    assert not early.joined
    late = monitored.add_prediction(prediction(2, score=0.1))
    assert late is not None
    assert late.joined
    monitored.add_prediction(prediction(1, score=0.9))  # replays of both
    assert not monitored.add_label(label(1, True)).joined
    windows = monitored.versions["v0001"]
    assert windows.predictions == 2
    assert windows.quality.rows().tolist() == [[1.0, 0.9, 100.0], [0.0, 0.1, 10.0]]
    assert windows.label_coverage == 1.0
    assert monitored.waiting == (0, 0)


def test_the_join_is_bounded_and_counts_what_it_drops() -> None:
    monitored = state(pending_capacity=3)
    for n in range(5):
        monitored.add_prediction(prediction(n))
    assert monitored.evicted_predictions == 2
    assert not monitored.add_label(label(0, True)).joined  # its prediction was dropped
    assert monitored.add_label(label(4, True)).joined


def test_only_the_newest_versions_keep_windows() -> None:
    monitored = state(max_versions=2)
    monitored.add_prediction(prediction(1, version="v0001"))
    monitored.add_prediction(prediction(2, version="v0002"))
    monitored.add_prediction(prediction(3, version="v0001"))
    monitored.add_prediction(prediction(4, version="v0003"))
    assert sorted(monitored.versions) == ["v0001", "v0003"]


def test_labels_after_counts_resolved_transactions_past_the_cut() -> None:
    monitored = state()
    for n in range(10):
        monitored.add_prediction(prediction(n))
        monitored.add_label(label(n, n % 2 == 0, delay=timedelta(seconds=100)))
    cut = (T0 + timedelta(seconds=5)).timestamp()
    assert monitored.labels_after(cut) == sum(n > 5 for n in range(10))


def test_unlabelled_predictions_turn_legitimate_once_the_horizon_has_passed() -> None:
    monitored = state(label_horizon_s=100.0)
    monitored.add_prediction(prediction(0, score=0.7, amount=5))
    monitored.add_prediction(prediction(50, score=0.2))
    monitored.add_label(label(50, True, delay=timedelta(seconds=20)))  # watermark 70: nothing expired yet
    assert monitored.expired == 0
    monitored.add_prediction(prediction(101))  # watermark 101 passes 0 + 100
    assert monitored.expired == 1
    assert monitored.waiting == (1, 0)
    assert monitored.versions["v0001"].quality.rows().tolist() == [[1.0, 0.2, 10.0], [0.0, 0.7, 5.0]]
    # A fraud label for the expired transaction comes too late: as the card says, it is not counted.
    assert not monitored.add_label(label(0, True, delay=timedelta(seconds=150))).joined


def reference(rng: np.random.Generator) -> Reference:
    profile = {
        "features": {
            "x": distribution_profile(rng.normal(0, 1, 5000)),
            "amount": distribution_profile(rng.lognormal(3, 1, 5000)),
        },
        "prediction": distribution_profile(rng.beta(1, 8, 5000)),
    }
    return Reference(ReferenceProfile.from_profile(profile), pr_auc=0.8)


def fill(monitored: MonitoringState, rng: np.random.Generator, rows: int, shift: float) -> None:
    for n in range(rows):
        fraud = rng.random() < 0.1
        score = float(np.clip(rng.beta(1, 8) + (0.5 if fraud else 0.0), 0, 1))
        monitored.add_prediction(
            prediction(n, x=float(rng.normal(shift, 1)), amount=float(rng.lognormal(3, 1)), score=score)
        )
        monitored.add_label(label(n, fraud))


SETTINGS = SnapshotSettings(min_drift_rows=30, min_labels=30, min_positives=2)


def test_snapshot_measures_drift_on_the_window_against_the_reference() -> None:
    rng = np.random.default_rng(3)
    ref = reference(rng)
    steady, shifted = state(), state()
    fill(steady, rng, 50, shift=0.0)
    fill(shifted, rng, 50, shift=2.0)
    calm = compute_snapshot(steady, {"v0001": ref}, COSTS, SETTINGS, None).versions[0]
    moved = compute_snapshot(shifted, {"v0001": ref}, COSTS, SETTINGS, None).versions[0]
    assert moved.features["x"].psi > 1.0 > 0.2 > calm.features["x"].psi
    assert moved.features["amount"].psi < 0.5  # only x moved
    # The snapshot is the statistics module over the window's columns, nothing else.
    window = shifted.versions["v0001"]
    matrix = window.drift.rows()
    expected = feature_drift(ref.profile, matrix[:, :2], list(window.features))  # type: ignore[arg-type]
    assert moved.features["x"].psi == expected["x"].psi
    assert moved.quality is not None
    assert moved.quality.sufficient
    assert moved.reference_pr_auc == 0.8


def test_small_windows_and_missing_references_export_no_drift() -> None:
    rng = np.random.default_rng(4)
    monitored = state()
    fill(monitored, rng, 10, shift=0.0)
    few = compute_snapshot(monitored, {"v0001": reference(rng)}, COSTS, SETTINGS, None).versions[0]
    assert few.features == {}
    assert few.prediction is None
    assert few.quality is not None
    assert not few.quality.sufficient
    fill(monitored, rng, 50, shift=0.0)
    unknown = compute_snapshot(monitored, {}, COSTS, SETTINGS, None).versions[0]
    assert unknown.features == {}
    assert unknown.reference_pr_auc is None


def exported(collector: SnapshotCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_the_collector_leaves_out_what_cannot_be_judged() -> None:
    rng = np.random.default_rng(5)
    monitored = state()
    fill(monitored, rng, 10, shift=0.0)
    collector = SnapshotCollector("fraud", new_rows_threshold=500)
    assert exported(collector) == {(("berg_monitoring_new_labelled_rows_threshold"), (("model", "fraud"),)): 500}
    collector.publish(compute_snapshot(monitored, {"v0001": reference(rng)}, COSTS, SETTINGS, 0.0))
    samples = exported(collector)
    key = (("model", "fraud"), ("version", "v0001"))
    assert samples[("berg_monitoring_quality_sufficient", key)] == 0
    assert samples[("berg_monitoring_quality_labels", key)] == 10
    assert ("berg_monitoring_quality_pr_auc", key) not in samples
    assert not any(name == "berg_monitoring_feature_psi" for name, _ in samples)
    assert samples[("berg_monitoring_new_labelled_rows", (("model", "fraud"),))] == 10
    fill(monitored, rng, 60, shift=0.0)
    collector.publish(compute_snapshot(monitored, {"v0001": reference(rng)}, COSTS, SETTINGS, None))
    samples = exported(collector)
    assert samples[("berg_monitoring_quality_sufficient", key)] == 1
    assert 0 <= samples[("berg_monitoring_quality_pr_auc", key)] <= 1
    assert ("berg_monitoring_feature_psi", (("feature", "x"), *key)) in samples
    assert ("berg_monitoring_new_labelled_rows", (("model", "fraud"),)) not in samples
