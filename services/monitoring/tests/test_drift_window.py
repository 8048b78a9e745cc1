"""Drift over whole cycles of event time: the window's logic, and what a daily cycle reads through it.

Traffic here has a daily cycle (busy 07-22 UTC, quiet at night) and a reference
profile built over whole days of it, as a version's training split is. A window
of the last N predictions reads drift on that undrifted traffic; a window of
whole days does not, still reads a real shift, and exports nothing for a part
of a day.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from scipy.stats import ks_2samp

from berg.contracts.predictions import PredictionV3
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.registry import ModelRegistry
from berg_fraud.use_case import fraud, problem_card
from berg_monitoring.drift_window import DriftSpec, LastPredictions, WholeCycles, drift_window
from berg_monitoring.exporter import Exporter
from berg_monitoring.metrics import MonitoringMetrics, SnapshotCollector
from berg_monitoring.references import ReferenceBook
from berg_monitoring.settings import MonitoringSettings
from berg_monitoring.snapshot import Reference, SnapshotSettings, VersionSnapshot, compute_snapshot
from berg_monitoring.statistics import ReferenceProfile
from berg_monitoring.windows import MonitoringState
from berg_pipelines.runtime.profile import distribution_profile
from tests.helpers import RecordingProducer
from tests.record_batches import Record

pytestmark = pytest.mark.unit

DAY = 86_400.0
HOUR = 3_600.0
MIDNIGHT = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
BUSY = np.where((np.arange(24) >= 7) & (np.arange(24) < 22), 1.0, 0.1)
"""Relative traffic per UTC hour: busy by day, a tenth of it at night."""
PER_DAY = 3_000
COSTS = problem_card().costs
DEFAULTS = MonitoringSettings()
SETTINGS = SnapshotSettings(DEFAULTS.min_drift_rows, DEFAULTS.min_labels, DEFAULTS.min_positives)


def event_times(rng: np.random.Generator, start_h: int, hours: int, busy: np.ndarray = BUSY) -> np.ndarray:
    """Sorted event times of ``PER_DAY`` transactions a day (a Poisson count per hour) from ``start_h`` hours past
    midnight, for ``hours`` hours."""
    hour = np.arange(start_h, start_h + hours)
    counts = rng.poisson(PER_DAY * busy[hour % 24] / busy.sum())
    return np.sort(MIDNIGHT + np.repeat(hour * HOUR, counts) + rng.uniform(0, HOUR, counts.sum()))


def hour_of_day(times: np.ndarray) -> np.ndarray:
    return (times // HOUR) % 24


def reference(rng: np.random.Generator) -> Reference:
    """The version's training profile: ten whole days of the same traffic."""
    times = event_times(rng, -240, 240)
    profile = {
        "features": {
            "hour_of_day": distribution_profile(hour_of_day(times)),
            "amount": distribution_profile(rng.lognormal(3, 1, len(times))),
        },
        "prediction": distribution_profile(rng.beta(1, 8, len(times))),
    }
    return Reference(ReferenceProfile.from_profile(profile), pr_auc=0.8)


def monitoring_state(drift: DriftSpec) -> MonitoringState:
    return MonitoringState(
        drift=drift,
        quality_window=DEFAULTS.quality_window,
        pending_capacity=DEFAULTS.pending_capacity,
        label_history=DEFAULTS.label_history,
        max_versions=DEFAULTS.max_versions,
        label_horizon_s=30 * DAY,
    )


def serve(states: list[MonitoringState], rng: np.random.Generator, times: np.ndarray) -> None:
    """Predictions of v0001 for transactions at ``times`` (features like the reference's), into every state."""
    for time in times:
        score = float(rng.beta(1, 8))
        prediction = PredictionV3(
            event_id=uuid.uuid4(),
            scored_event_id=uuid.uuid4(),
            scored_event_time=datetime.fromtimestamp(time, UTC),
            served_at=datetime.fromtimestamp(time, UTC),
            entities={"user_id": "u-1", "merchant_id": "m-1"},
            model_name="fraud",
            model_version="v0001",
            features={"hour_of_day": float(hour_of_day(time)), "amount": float(rng.lognormal(3, 1))},
            score=score,
            threshold=0.5,
            decision="review" if score >= 0.5 else "approve",
        )
        for state in states:
            state.add_prediction(prediction)


def snapshot(state: MonitoringState, ref: Reference, *, drift_ready: bool = True) -> VersionSnapshot:
    [version] = compute_snapshot(state, {"v0001": ref}, COSTS, SETTINGS, None, drift_ready=drift_ready).versions
    return version


def test_a_whole_day_reads_no_drift_on_hour_of_day_where_the_last_predictions_read_a_part_of_the_day() -> None:
    rng = np.random.default_rng(11)
    ref = reference(rng)
    cycles = monitoring_state(DEFAULTS.drift_spec())  # the exporter's defaults
    last_predictions = monitoring_state(DriftSpec(2_000, cycle_s=0))  # the last 2,000 predictions
    times = event_times(rng, 0, 24 + 14)  # a day, then until 14:00
    serve([cycles, last_predictions], rng, times)

    partial = snapshot(last_predictions, ref)
    assert partial.features["hour_of_day"].psi > 0.2, "the last predictions cover a part of the day"
    whole = snapshot(cycles, ref)
    assert whole.drift_sufficient
    assert whole.drift_span_s == DAY
    assert whole.drift_sample_ratio == 1.0
    # The newest prediction's time back to the same time the day before: every prediction of that day.
    assert whole.drift_rows == np.count_nonzero(times > times[-1] - DAY)
    assert whole.features["hour_of_day"].psi < 0.02
    assert whole.features["amount"].psi < 0.02
    assert whole.prediction is not None
    assert whole.prediction.psi < 0.02
    # While the reader catches up on its partitions, nothing is judged, however whole the day.
    catching_up = snapshot(cycles, ref, drift_ready=False)
    assert not catching_up.drift_sufficient
    assert catching_up.features == {}
    assert catching_up.prediction is None


def test_a_shifted_day_still_reads_drift_over_the_whole_day() -> None:
    rng = np.random.default_rng(12)
    ref = reference(rng)
    cycles = monitoring_state(DEFAULTS.drift_spec())
    serve([cycles], rng, event_times(rng, 0, 30, busy=np.roll(BUSY, 6)))  # the busy hours six hours later
    moved = snapshot(cycles, ref)
    assert moved.drift_sufficient
    assert moved.features["hour_of_day"].psi > 0.2
    assert moved.features["amount"].psi < 0.02


def exported(collector: SnapshotCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_a_part_of_a_day_exports_no_drift_and_says_so() -> None:
    rng = np.random.default_rng(13)
    ref = reference(rng)
    cycles = monitoring_state(DEFAULTS.drift_spec())
    times = event_times(rng, 0, 20)  # midnight to 20:00
    serve([cycles], rng, times)
    collector = SnapshotCollector("fraud", new_rows_threshold=500, currency=COSTS.currency)
    collector.publish(compute_snapshot(cycles, {"v0001": ref}, COSTS, SETTINGS, None))
    samples = exported(collector)
    key = (("model", "fraud"), ("version", "v0001"))
    assert samples[("berg_monitoring_drift_sufficient", key)] == 0
    assert samples[("berg_monitoring_drift_window_seconds", key)] == pytest.approx(times[-1] - times[0], abs=1e-3)
    assert samples[("berg_monitoring_drift_window_predictions", key)] == len(times)
    assert len(times) > 10 * DEFAULTS.min_drift_rows, "enough predictions: it is the part of a day that withholds"
    names = {name for name, _ in samples}
    assert not names & {"berg_monitoring_feature_psi", "berg_monitoring_feature_ks", "berg_monitoring_prediction_psi"}

    serve([cycles], rng, event_times(rng, 20, 6))  # until 02:00 the next day: a whole day
    collector.publish(compute_snapshot(cycles, {"v0001": ref}, COSTS, SETTINGS, None))
    samples = exported(collector)
    assert samples[("berg_monitoring_drift_sufficient", key)] == 1
    assert samples[("berg_monitoring_drift_window_seconds", key)] == DAY
    assert samples[("berg_monitoring_drift_sample_ratio", key)] == 1
    assert samples[("berg_monitoring_feature_psi", (("feature", "hour_of_day"), *key))] < 0.05
    assert ("berg_monitoring_prediction_psi", key) in samples


def test_the_window_holds_the_newest_whole_cycles_and_drops_stragglers() -> None:
    window = WholeCycles(1, capacity=1_000, cycle_s=100.0, cycles=2, rng=np.random.default_rng(1))
    for t in range(100):
        window.add(float(t), [float(t)])
    held = window.current()
    assert not held.sufficient
    assert held.span_s == 99
    assert held.rows[:, 0].tolist() == list(range(100)), "insufficient: what it holds so far"
    window.add(100.0, [100.0])
    held = window.current()
    assert held.sufficient
    assert held.span_s == 100
    assert held.rows[:, 0].tolist() == list(range(1, 101)), "t > newest - one cycle"
    for t in range(101, 251):
        window.add(float(t), [float(t)])
    held = window.current()
    assert held.span_s == 200, "two whole cycles, the most it spans"
    assert held.rows[:, 0].tolist() == list(range(51, 251))
    window.add(50.0, [-1.0])  # a straggler older than every window: dropped
    window.add(60.0, [-2.0])  # out of order but inside the window: kept
    assert sorted(window.current().rows[:, 0].tolist()) == [-2.0, *range(51, 251)]


def test_a_cycle_beyond_the_capacity_is_a_uniform_sample_within_it() -> None:
    capacity = 1_000
    window = WholeCycles(1, capacity=capacity, cycle_s=DAY, cycles=1, rng=np.random.default_rng(2))
    times = event_times(np.random.default_rng(3), 0, 24 * 3 + 9)  # 9,000-odd predictions, three days and more
    largest = 0
    for time in times:
        window.add(float(time), [float(time)])
        largest = max(largest, len(window))
    held = window.current()
    assert largest <= capacity
    assert held.sufficient
    assert held.span_s == DAY
    in_window = times[times > times[-1] - DAY]
    # Each prediction of the day is held with the same probability: a binomial count...
    assert held.sample_ratio < 1
    expected = held.sample_ratio * len(in_window)
    assert abs(len(held.rows) - expected) < 5 * np.sqrt(expected)
    assert len(held.rows) > capacity / 4
    # ...spread over the day as the day's traffic is (its hours too), not bunched at either end.
    assert ks_2samp(held.rows[:, 0], in_window).pvalue > 0.01
    assert held.rows[:, 0].min() > times[-1] - DAY


def test_without_a_cycle_the_window_is_the_last_predictions() -> None:
    window = drift_window(DriftSpec(5, cycle_s=0), 2, "v0001")
    assert isinstance(window, LastPredictions)
    for t in range(8):
        window.add(10.0 * t, [float(t), 0.5])
    held = window.current()
    assert held.sufficient
    assert held.rows[:, 0].tolist() == [3, 4, 5, 6, 7]
    assert held.span_s == 40
    assert len(window) == 5


def test_settings_bound_the_window() -> None:
    assert DEFAULTS.drift_spec() == DriftSpec(20_000, 86_400.0, 1)
    with pytest.raises(ValidationError, match="drift_cycle_s"):
        MonitoringSettings(drift_cycle_s=-1)
    with pytest.raises(ValidationError, match="exceeds drift_capacity"):
        MonitoringSettings(drift_capacity=100, min_drift_rows=200)
    with pytest.raises(ValueError, match="cycles"):
        DriftSpec(100, cycles=0)


class PartitionByPartition:
    """A consumer that serves the predictions topic one partition after the other, ``per_poll`` records a poll,
    as a reader catching up after its start may: partition 0 days ahead of partition 1."""

    def __init__(self, logs: dict[TopicPartition, list[bytes]], per_poll: int) -> None:
        self.logs = logs
        self.positions = dict.fromkeys(logs, 0)
        self.per_poll = per_poll

    def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        for partition in sorted(self.logs):
            position = self.positions[partition]
            values = self.logs[partition][position : position + self.per_poll]
            if values:
                self.positions[partition] += len(values)
                records = [
                    Record(partition.topic, partition.partition, position + n, b"k", value, [], 0)
                    for n, value in enumerate(values)
                ]
                return {partition: records}
        return {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    def position(self, partition: TopicPartition) -> int:
        return self.positions[partition]

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {partition: len(self.logs[partition]) for partition in partitions}


def test_the_exporter_judges_no_drift_while_it_catches_up_on_the_predictions_partitions(tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    times = event_times(rng, 0, 60)  # two and a half days
    predictions = [
        PredictionV3(
            event_id=uuid.uuid4(),
            scored_event_id=uuid.uuid4(),
            scored_event_time=datetime.fromtimestamp(time, UTC),
            served_at=datetime.fromtimestamp(time, UTC),
            entities={"user_id": f"u-{n % 2}", "merchant_id": "m-1"},
            model_name="fraud",
            model_version="v0001",
            features={"hour_of_day": float(hour_of_day(time)), "amount": 20.0},
            score=0.1,
            threshold=0.5,
            decision="approve",
        )
        .model_dump_json()
        .encode()
        for n, time in enumerate(times)
    ]
    partitions = [TopicPartition("p", 0), TopicPartition("p", 1)]
    # Each partition holds every other transaction, in event-time order; each alone spans more than a day.
    consumer = PartitionByPartition({p: predictions[p.partition :: 2] for p in partitions}, per_poll=500)
    settings = MonitoringSettings(registry_uri=str(tmp_path / "registry"), predictions_topic="p", labels_topic="l")
    card = problem_card()
    collector = SnapshotCollector("fraud", settings.new_labelled_rows_threshold, currency=card.costs.currency)
    exporter = Exporter(
        settings,
        consumer,
        ReferenceBook(ModelRegistry(settings.registry_uri), "fraud", settings.registry_poll_s),
        card,
        collector,
        MonitoringMetrics.register(CollectorRegistry()),
        DeadLetterPublisher(RecordingProducer(), "monitoring"),
        use_case=fraud(),
        model_name="fraud",
    )
    key = (("model", "fraud"), ("version", "v0001"))
    exported_sufficient: list[float] = []
    window_whole: list[bool] = []
    while exporter.step():
        exporter.refresh()
        exported_sufficient.append(exported(collector)[("berg_monitoring_drift_sufficient", key)])
        window_whole.append(exporter.state.versions["v0001"].drift.current().sufficient)
    assert consumer.positions == {p: len(consumer.logs[p]) for p in partitions}
    # Partition 0 alone spans whole days long before partition 1 is read: the window would be whole, but the
    # hours of partition 1 it holds are not those of partition 0, and nothing is judged until both are read.
    assert window_whole[0] is False
    assert any(window_whole[:-1])
    assert exported_sufficient[:-1] == [0.0] * (len(exported_sufficient) - 1)
    assert exported_sufficient[-1] == 1.0
