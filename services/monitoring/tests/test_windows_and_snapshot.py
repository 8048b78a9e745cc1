"""The exporter's state and snapshot: the join of labels to predictions, bounded windows, what is exported."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from berg.contracts.predictions import PredictionLogReader, PredictionV3
from berg_fraud.contracts import LabelV1
from berg_fraud.predictions import PredictionV1, PredictionV2
from berg_fraud.use_case import fraud
from berg_monitoring.drift_window import DriftSpec
from berg_monitoring.metrics import SnapshotCollector
from berg_monitoring.snapshot import Reference, SnapshotSettings, compute_snapshot
from berg_monitoring.statistics import ReferenceProfile, feature_drift
from berg_monitoring.windows import (
    LabelOutcome,
    MonitoringState,
    Ring,
    Verdict,
)
from berg_pipelines.runtime.profile import distribution_profile

pytestmark = pytest.mark.unit

T0 = datetime(2026, 6, 1, tzinfo=UTC)
DAY = 86_400
FRAUD = fraud()
COSTS = FRAUD.card.costs


def state(**overrides: Any) -> MonitoringState:
    """A small state; its drift window is the last 50 predictions (these tests span seconds, not days)."""
    options = {
        "drift": DriftSpec(50, cycle_s=0),
        "quality_window": 40,
        "pending_capacity": 100,
        "label_history": 1000,
        "label_horizon_s": 30 * 86_400.0,
        "amount_feature": FRAUD.label_join.amount,
    }
    return MonitoringState(**{**options, "max_versions": 2, **overrides})


def prediction(
    n: int, *, version: str = "v0001", x: float = 1.0, amount: float = 10.0, score: float = 0.5, **extra: Any
) -> PredictionV3:
    """A prediction of scored event ``n``, served at its own event time (as in real time)."""
    return PredictionV3(
        event_id=uuid.uuid4(),
        scored_event_id=uuid.UUID(int=n + 1, version=4),
        scored_event_time=T0 + timedelta(seconds=n),
        served_at=T0 + timedelta(seconds=n),
        entities={"user_id": "u-1", "merchant_id": "m-1"},
        model_name="fraud",
        model_version=version,
        features={"x": x, "amount": amount, **extra},
        score=score,
        threshold=0.5,
        decision="review" if score >= 0.5 else "approve",
    )


def legacy_v1(n: int, *, served_at: datetime, score: float = 0.5) -> PredictionV1:
    """A record of the fraud case's first prediction log version: it only says when it was served."""
    return PredictionV1(
        event_id=uuid.uuid4(),
        event_time=served_at,
        transaction_event_id=uuid.UUID(int=n + 1, version=4),
        user_id="u-1",
        merchant_id="m-1",
        model_name="fraud",
        model_version="v0001",
        features={"x": 1.0, "amount": 10.0},
        score=score,
        threshold=0.5,
        decision="review" if score >= 0.5 else "approve",
    )


def legacy_v2(n: int, *, served_at: datetime, score: float = 0.5) -> PredictionV2:
    return PredictionV2(
        event_id=uuid.uuid4(),
        transaction_event_id=uuid.UUID(int=n + 1, version=4),
        transaction_event_time=T0 + timedelta(seconds=n),
        served_at=served_at,
        user_id="u-1",
        merchant_id="m-1",
        model_name="fraud",
        model_version="v0001",
        features={"x": 1.0, "amount": 10.0},
        score=score,
        threshold=0.5,
        decision="review" if score >= 0.5 else "approve",
    )


def prediction_v3(n: int, *, served_at: datetime, score: float = 0.5) -> PredictionV3:
    return PredictionV3(
        event_id=uuid.uuid4(),
        scored_event_id=uuid.UUID(int=n + 1, version=4),
        scored_event_time=T0 + timedelta(seconds=n),
        served_at=served_at,
        entities={"user_id": "u-1", "merchant_id": "m-1"},
        model_name="fraud",
        model_version="v0001",
        features={"x": 1.0, "amount": 10.0},
        score=score,
        threshold=0.5,
        decision="review" if score >= 0.5 else "approve",
    )


def label(n: int, fraud: bool, *, delay: timedelta = timedelta(days=2)) -> Verdict:
    """A fraud label of transaction ``n``, read through the fraud case's label join as the exporter reads it."""
    decoded = LabelV1(
        event_id=uuid.uuid4(),
        event_time=T0 + timedelta(seconds=n) + delay,
        transaction_event_id=uuid.UUID(int=n + 1, version=4),
        user_id="u-1",
        is_fraud=fraud,
    )
    return Verdict.of(decoded, FRAUD.label_join)


def test_ring_keeps_the_most_recent_rows_oldest_first() -> None:
    ring = Ring(3, 1)
    for value in range(5):
        ring.append([value])
    assert len(ring) == 3
    assert ring.rows()[:, 0].tolist() == [2, 3, 4]


def test_labels_join_their_prediction_in_either_order_and_replays_change_nothing() -> None:
    monitored = state(label_horizon_s=DAY)
    monitored.add_prediction(prediction(1, score=0.9, amount=100))
    joined = monitored.add_label(label(1, True, delay=timedelta(hours=5)))
    assert joined == LabelOutcome("joined", 5 * 3600)
    assert monitored.add_label(label(2, False, delay=timedelta(hours=2))).kind == "waiting"  # label first
    assert monitored.add_prediction(prediction(2, score=0.1)) == LabelOutcome("joined", 2 * 3600)
    assert monitored.add_prediction(prediction(1, score=0.9)) is None  # replays of both
    assert monitored.add_label(label(1, True, delay=timedelta(hours=5))).kind == "repeat"
    windows = monitored.versions["v0001"]
    assert windows.predictions == 2
    assert windows.label_coverage == 1.0
    assert monitored.waiting == (2, 0)
    assert len(windows.quality) == 0, "nothing has matured: its label is not final yet"
    settle(monitored, 2 + DAY)
    assert windows.quality.rows().tolist() == [[1.0, 0.9, 100.0], [0.0, 0.1, 10.0]]
    assert monitored.expired == 0
    assert monitored.add_label(label(1, True)).kind == "repeat"  # a replay after maturity
    assert monitored.waiting == (1, 0)  # the clock's own transaction


def settle(monitored: MonitoringState, seconds: float) -> None:
    """Move both streams' event time to ``T0 + seconds`` (a prediction and a label of another transaction)."""
    n = int(seconds)
    monitored.add_prediction(prediction(n, version="clock"))
    monitored.add_label(label(n, False, delay=timedelta(0)))


def upgraded_v2(n: int, *, served_at: datetime, score: float = 0.5) -> PredictionV3:
    return legacy_v2(n, served_at=served_at, score=score).upgraded()


@pytest.mark.parametrize("logged", [upgraded_v2, prediction_v3])
def test_delays_and_horizons_run_on_the_scored_events_time_not_the_serving_time(logged: Any) -> None:
    monitored = state(label_horizon_s=30 * DAY)
    served = T0 + timedelta(days=400)  # a replay: served long after the transactions happened
    monitored.add_prediction(logged(0, served_at=served, score=0.8))
    monitored.add_prediction(logged(10, served_at=served, score=0.3))
    assert monitored.add_label(label(0, True, delay=timedelta(days=12))) == LabelOutcome("joined", 12 * DAY)
    monitored.add_prediction(logged(31 * DAY, served_at=served))
    assert monitored.expired == 0, "no label has been seen past the horizon yet: the label stream may lag"
    monitored.add_label(label(31 * DAY, False, delay=timedelta(0)))  # both streams at day 31
    assert monitored.watermark == (T0 + timedelta(days=31)).timestamp()
    assert monitored.versions["v0001"].quality.rows().tolist() == [[1.0, 0.8, 10.0], [0.0, 0.3, 10.0]]
    assert monitored.expired == 1


def test_the_watermark_follows_the_slowest_partition_and_waits_for_unread_ones() -> None:
    monitored = state(label_horizon_s=100.0)
    monitored.await_partitions({("labels", 1)})  # it holds records from before the start, not read yet
    monitored.add_prediction(prediction(500), partition=0)  # partition 0 is read ahead of partition 1
    monitored.add_label(label(500, False, delay=timedelta(0)), partition=0)
    monitored.add_prediction(prediction(20), partition=1)
    monitored.add_prediction(prediction(400), partition=1)
    assert monitored.watermark == float("-inf"), "nothing read yet from labels partition 1"
    # Labels partition 1 lags behind: at 110, transaction 20's fraud label is still within its horizon.
    assert monitored.add_label(label(20, True, delay=timedelta(seconds=90)), partition=1).kind == "joined"
    assert monitored.watermark == (T0 + timedelta(seconds=110)).timestamp()
    assert len(monitored.versions["v0001"].quality) == 0
    monitored.add_label(label(400, False, delay=timedelta(0)), partition=1)  # every partition at 400 or later
    assert monitored.watermark == (T0 + timedelta(seconds=400)).timestamp()
    assert monitored.versions["v0001"].quality.rows()[:, 0].tolist() == [1.0]
    monitored.add_prediction(prediction(5), partition=1)  # disorder: an earlier transaction arrives last
    assert monitored.versions["v0001"].quality.rows()[:, 0].tolist() == [1.0, 0.0], "it matures at once"
    assert monitored.expired == 1
    # Another model's prediction moves its partition on, as much as this model's would.
    monitored.advance("scored", 1, (T0 + timedelta(seconds=600)).timestamp())
    monitored.add_label(label(700, False, delay=timedelta(0)), partition=1)
    monitored.add_label(label(800, False, delay=timedelta(0)), partition=0)
    assert monitored.watermark == (T0 + timedelta(seconds=500)).timestamp()
    assert monitored.versions["v0001"].quality.rows()[:, 0].tolist() == [1.0, 0.0, 0.0]
    # A partition awaited but read to where it ended without a record of its stream no longer holds anything.
    monitored.await_partitions({("scored", 2)})
    assert monitored.watermark == float("-inf")
    monitored.await_partitions(set())
    assert monitored.watermark == (T0 + timedelta(seconds=500)).timestamp()


def test_every_version_of_the_log_names_its_scored_event_and_counts_after_an_upgrade() -> None:
    served = T0 + timedelta(days=2)
    v1, v2 = legacy_v1(1, served_at=T0 + timedelta(seconds=1)), legacy_v2(2, served_at=served)
    log = PredictionLogReader(FRAUD.legacy_predictions)
    read = [log.model_validate_json(p.model_dump_json()) for p in (v1, v2, prediction_v3(3, served_at=served))]
    assert [p.scored_event_id for p in read] == [uuid.UUID(int=n + 1, version=4) for n in (1, 2, 3)]
    # v1 only says when it was served: it stands there; v2 and v3 at the scored event's time.
    assert [p.scored_event_time for p in read] == [v1.event_time, v2.transaction_event_time, T0 + timedelta(seconds=3)]
    assert [p.served_at for p in read] == [v1.event_time, served, served]
    assert {p.model_version for p in read} == {"v0001"}
    assert read[0].entities == read[1].entities == {"user_id": "u-1", "merchant_id": "m-1"}
    monitored = state(label_horizon_s=DAY)
    for logged in read:  # records written before the upgrade, then after it, on one topic
        monitored.add_prediction(logged)
    outcomes = [monitored.add_label(label(n, True, delay=timedelta(hours=n))) for n in (1, 2, 3)]
    assert [outcome.kind for outcome in outcomes] == ["joined"] * 3
    assert [outcome.delay_s for outcome in outcomes] == [3600.0 * n for n in (1, 2, 3)]
    assert monitored.add_prediction(prediction_v3(3, served_at=served)) is None, "a replay changes nothing"
    assert monitored.versions["v0001"].predictions == 3


def test_a_v1_prediction_stands_at_its_serving_time() -> None:
    monitored = state()
    served = T0 + timedelta(hours=1)  # v1 says nothing of the scored event's time: it stands where it was served
    monitored.add_prediction(legacy_v1(0, served_at=served).upgraded())
    assert monitored.add_label(label(0, True, delay=timedelta(hours=3))).delay_s == 2 * 3600


def test_a_label_after_the_horizon_is_late_and_its_transaction_stays_legitimate() -> None:
    monitored = state(label_horizon_s=100.0)
    monitored.add_prediction(prediction(0, score=0.9))
    monitored.add_prediction(prediction(1, score=0.9))
    # Transaction 0's label comes after its horizon, before the prediction stream has passed it: late anyway.
    assert monitored.add_label(label(0, True, delay=timedelta(seconds=150))) == LabelOutcome("late", 150)
    monitored.add_prediction(prediction(200))  # both streams past 0 + 100 and 1 + 100
    assert monitored.versions["v0001"].quality.rows()[:, 0].tolist() == [0.0, 0.0]
    assert monitored.expired == 2
    # Transaction 1 has matured; its fraud label comes later still.
    assert monitored.add_label(label(1, True, delay=timedelta(seconds=250))) == LabelOutcome("late", 250)
    assert monitored.add_label(label(1, True, delay=timedelta(seconds=250))).kind == "repeat"
    assert monitored.versions["v0001"].labelled == 0


def test_a_fraud_label_outranks_a_legitimate_one() -> None:
    monitored = state(label_horizon_s=100.0)
    monitored.add_prediction(prediction(0, score=0.4))
    assert monitored.add_label(label(0, False, delay=timedelta(seconds=10))).kind == "joined"
    assert monitored.add_label(label(0, True, delay=timedelta(seconds=20))).kind == "repeat"
    settle(monitored, 150)
    assert monitored.versions["v0001"].quality.rows().tolist() == [[1.0, 0.4, 10.0]]


def test_the_join_is_bounded_and_counts_what_it_drops() -> None:
    monitored = state(pending_capacity=3)
    for n in range(5):
        monitored.add_prediction(prediction(n))
    assert monitored.evicted_predictions == 2
    assert monitored.add_label(label(0, True)).kind == "waiting"  # its prediction was dropped
    assert monitored.add_label(label(4, True)).kind == "joined"
    for n in range(10, 15):
        monitored.add_label(label(n, True))
    assert monitored.evicted_labels == 3


def test_matured_transactions_are_remembered_up_to_the_label_history() -> None:
    monitored = state(label_horizon_s=10.0, label_history=3)
    for n in range(6):
        monitored.add_prediction(prediction(n))
    settle(monitored, 100)
    assert monitored.expired == 6
    assert monitored.add_label(label(5, True, delay=timedelta(seconds=20))).kind == "late"  # remembered
    assert monitored.add_label(label(0, True, delay=timedelta(seconds=20))).kind == "waiting"  # forgotten


def test_only_the_newest_versions_keep_windows() -> None:
    monitored = state(max_versions=2)
    monitored.add_prediction(prediction(1, version="v0001"))
    monitored.add_prediction(prediction(2, version="v0002"))
    monitored.add_prediction(prediction(3, version="v0001"))
    monitored.add_prediction(prediction(4, version="v0003"))
    assert sorted(monitored.versions) == ["v0001", "v0003"]


def test_labels_after_counts_matured_transactions_past_the_cut() -> None:
    monitored = state(label_horizon_s=50.0)
    for n in range(10):
        monitored.add_prediction(prediction(n))
        monitored.add_label(label(n, n % 2 == 0, delay=timedelta(seconds=10)))
    assert monitored.labels_after(0.0) == 0, "nothing matured"
    settle(monitored, 58)  # watermark 58: transactions 0..8 have matured
    cut = (T0 + timedelta(seconds=5)).timestamp()
    assert monitored.labels_after(cut) == sum(5 < n <= 8 for n in range(10))


def reference(rng: np.random.Generator, *, watch_only: frozenset[str] = frozenset()) -> Reference:
    """x ~ N(0, 1), amount ~ lognormal; ``watch_only`` features are marked ``retrain_on_drift: false``."""
    profile = {
        "features": {
            name: {**distribution_profile(values), "retrain_on_drift": name not in watch_only}
            for name, values in (("x", rng.normal(0, 1, 5000)), ("amount", rng.lognormal(3, 1, 5000)))
        },
        "prediction": distribution_profile(rng.beta(1, 8, 5000)),
    }
    return Reference(ReferenceProfile.from_profile(profile), pr_auc=0.8)


def fill(monitored: MonitoringState, rng: np.random.Generator, rows: int, shift: float, *, start: int = 0) -> int:
    """``rows`` predictions with their labels (2 days later), then event time moves on until all have matured;
    where the next ``fill`` starts."""
    for n in range(start, start + rows):
        fraud = rng.random() < 0.1
        score = float(np.clip(rng.beta(1, 8) + (0.5 if fraud else 0.0), 0, 1))
        monitored.add_prediction(
            prediction(n, x=float(rng.normal(shift, 1)), amount=float(rng.lognormal(3, 1)), score=score)
        )
        monitored.add_label(label(n, fraud))
    end = start + rows + int(monitored.label_horizon_s)
    settle(monitored, end)
    return end + 1


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
    matrix = window.drift.current().rows
    expected = feature_drift(ref.profile, matrix[:, :2], list(window.features))  # type: ignore[arg-type]
    assert moved.features["x"].psi == expected["x"].psi
    assert moved.quality is not None
    assert moved.quality.sufficient
    assert moved.reference_pr_auc == 0.8


def test_small_windows_and_missing_references_export_no_drift() -> None:
    rng = np.random.default_rng(4)
    monitored = state()
    start = fill(monitored, rng, 10, shift=0.0)
    few = compute_snapshot(monitored, {"v0001": reference(rng)}, COSTS, SETTINGS, None).versions[0]
    assert few.features == {}
    assert few.prediction is None
    assert few.quality is not None
    assert not few.quality.sufficient
    fill(monitored, rng, 50, shift=0.0, start=start)
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
    start = fill(monitored, rng, 10, shift=0.0)
    collector = SnapshotCollector("fraud", new_rows_threshold=500, currency=COSTS.currency)
    assert exported(collector) == {(("berg_monitoring_new_labelled_rows_threshold"), (("model", "fraud"),)): 500}
    collector.publish(compute_snapshot(monitored, {"v0001": reference(rng)}, COSTS, SETTINGS, 0.0))
    samples = exported(collector)
    key = (("model", "fraud"), ("version", "v0001"))
    assert samples[("berg_monitoring_quality_sufficient", key)] == 0
    assert samples[("berg_monitoring_quality_labels", key)] == 10
    assert ("berg_monitoring_quality_pr_auc", key) not in samples
    assert not any(name == "berg_monitoring_feature_psi" for name, _ in samples)
    assert samples[("berg_monitoring_new_labelled_rows", (("model", "fraud"),))] == 10
    fill(monitored, rng, 60, shift=0.0, start=start)
    collector.publish(compute_snapshot(monitored, {"v0001": reference(rng)}, COSTS, SETTINGS, None))
    samples = exported(collector)
    assert samples[("berg_monitoring_quality_sufficient", key)] == 1
    assert 0 <= samples[("berg_monitoring_quality_pr_auc", key)] <= 1
    assert ("berg_monitoring_feature_psi", (("feature", "x"), *key)) in samples
    assert ("berg_monitoring_new_labelled_rows", (("model", "fraud"),)) not in samples


def test_amounts_and_costs_carry_the_card_currency_as_a_label_not_in_their_names() -> None:
    rng = np.random.default_rng(7)
    monitored = state()
    fill(monitored, rng, 70, shift=0.0)
    # A currency other than the bundled card's: the label is the one the collector is given, not a constant.
    costs = COSTS.model_copy(update={"currency": "CHF"})
    collector = SnapshotCollector("fraud", new_rows_threshold=500, currency=costs.currency)
    snapshot = compute_snapshot(monitored, {"v0001": reference(rng)}, costs, SETTINGS, None)
    quality = snapshot.versions[0].quality
    assert quality is not None
    assert quality.sufficient
    collector.publish(snapshot)
    samples = exported(collector)
    key = (("model", "fraud"), ("version", "v0001"))
    in_chf = (("currency", "CHF"), *key)
    assert samples[("berg_monitoring_positive_amount_caught", in_chf)] == pytest.approx(quality.positive_amount_caught)
    assert samples[("berg_monitoring_positive_amount_missed", in_chf)] == pytest.approx(quality.positive_amount_missed)
    assert samples[("berg_monitoring_false_positive_cost", in_chf)] == pytest.approx(quality.false_positive_cost)
    assert samples[("berg_monitoring_expected_cost", in_chf)] == pytest.approx(quality.expected_cost)
    assert ("berg_monitoring_quality_pr_auc", key) in samples, "the gauges that are not money have no currency"


def test_the_collector_says_which_features_may_retrain_next_to_their_psi() -> None:
    rng = np.random.default_rng(6)
    monitored = state()
    fill(monitored, rng, 70, shift=0.0)
    collector = SnapshotCollector("fraud", new_rows_threshold=500, currency=COSTS.currency)
    watched = reference(rng, watch_only=frozenset({"amount"}))
    collector.publish(compute_snapshot(monitored, {"v0001": watched}, COSTS, SETTINGS, None))
    samples = exported(collector)
    key = (("model", "fraud"), ("version", "v0001"))
    assert ("berg_monitoring_feature_psi", (("feature", "amount"), *key)) in samples
    assert samples[("berg_monitoring_feature_retrain_on_drift", (("feature", "amount"), *key))] == 0
    assert samples[("berg_monitoring_feature_retrain_on_drift", (("feature", "x"), *key))] == 1
