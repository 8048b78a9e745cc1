"""Label delays and label horizons on the transactions' clock, through Kafka, the exporter and Prometheus.

A replay of the simulator's ``label_delay_change`` scenario (chargeback delays
triple from the onset on), months of event time before the wall clock: each
transaction is scored by serving's own code (feature assembly, scored
events, the prediction log's writer with its Kafka producer) onto a
predictions topic of the session's broker, and its labels go to a labels topic,
keyed by user as serving and the data plane key them. The real exporter reads
both and the stack's Prometheus scrapes it. The simulator's truth says what each
label's delay is and which transactions are past their horizon.

- The label-delay histogram holds the simulated delays (label event time minus
  the transaction's event time), bucket by bucket, and its quantiles are the
  truth's; with the serving time as the transaction's clock every delay read 0.
- Before a horizon of event time has passed, no outcome is settled: quality says
  ``sufficient 0`` with no quality gauges (and so nothing for ModelQualityDegraded
  to read), although there are enough early labels, mostly frauds, to compute a
  (meaningless) PR-AUC.
- Once both streams are a horizon past a transaction it matures: the expired,
  joined and late counters equal the truth, and quality becomes sufficient.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from kafka import KafkaConsumer
from prometheus_client import CollectorRegistry

from berg.contracts import PredictionV3
from berg.kafka.producer import open_producer
from berg.registry import Lineage, ModelRegistry, VersionMetadata
from berg.settings import KafkaSettings
from berg.simulator import SimulatedEvent
from berg_app.simulator import bounded
from berg_app.stack.local import LocalStack
from berg_app.stack.monitoring_config import register_scrape_target, unregister_scrape_target
from berg_fraud.contracts import LabelV1, TransactionV1
from berg_fraud.simulator import SimulationConfig, make_scenario, simulate
from berg_fraud.use_case import problem_card
from berg_pipelines.runtime.profile import distribution_profile
from berg_serving.metrics import ServingMetrics
from berg_serving.prediction_log import PredictionLog
from berg_serving.predictions import Scores, score_events
from tests.fraud_serving import ASSEMBLER
from tests.helpers import wait_for
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "delayclock"
START = datetime(2026, 1, 1, tzinfo=UTC)
ONSET = START + timedelta(days=10)
FIRST_PART_END = START + timedelta(days=28)  # less than a horizon: nothing can have matured
END = START + timedelta(days=70)
HORIZON = timedelta(days=problem_card().target.label_horizon_days)
MIN_LABELS, MIN_POSITIVES, QUALITY_WINDOW = 100, 5, 5000


@dataclass(frozen=True)
class Truth:
    """What the simulator knows about the records produced so far."""

    transactions: dict[uuid.UUID, datetime]
    labels: list[tuple[uuid.UUID, datetime, bool]]
    """(transaction, label event time, fraud), in production order."""
    label_partitions: list[int]

    @property
    def delays_s(self) -> np.ndarray:
        return np.array([(at - self.transactions[t]).total_seconds() for t, at, _ in self.labels])

    def within_horizon(self) -> dict[uuid.UUID, bool]:
        """Transactions with a label within the horizon, and whether one of those is a fraud label."""
        found: dict[uuid.UUID, bool] = {}
        for transaction, at, fraud in self.labels:
            if at - self.transactions[transaction] <= HORIZON:
                found[transaction] = found.get(transaction, False) or fraud
        return found

    def matured(self, watermark: datetime) -> list[uuid.UUID]:
        """Transactions a horizon older than ``watermark``, earliest first."""
        due = [(t, key) for key, t in self.transactions.items() if t <= watermark - HORIZON]
        return [key for _, key in sorted(due)]


def split(events: Sequence[SimulatedEvent]) -> tuple[list[TransactionV1], list[SimulatedEvent]]:
    transactions = [TransactionV1.model_validate_json(e.value) for e in events if e.kind == "scored"]
    return transactions, [e for e in events if e.kind == "label"]


def score(transactions: Sequence[TransactionV1], fraud: set[uuid.UUID], rng: np.random.Generator) -> list[float]:
    """A model that ranks frauds high, mostly: what the quality gauges will measure."""
    draws = rng.random(len(transactions))
    return [
        float(0.55 + 0.45 * u) if t.event_id in fraud else float(0.5 * u**4)
        for t, u in zip(transactions, draws, strict=True)
    ]


def serve(
    kafka: KafkaSettings, topic: str, transactions: Sequence[TransactionV1], fraud: set[uuid.UUID], seed: int
) -> None:
    """Score through serving's code and log every prediction to ``topic`` with serving's prediction log."""
    metrics_registry = CollectorRegistry()
    log = PredictionLog(
        lambda: open_producer(kafka),
        topic,
        len(transactions) + 1,
        ServingMetrics.register(metrics_registry),
        key="user_id",
    )
    log.start()
    rng = np.random.default_rng(seed)
    served_at = datetime.now(UTC)
    for start in range(0, len(transactions), 500):
        batch = transactions[start : start + 500]
        frame = ASSEMBLER.assemble(batch, {})  # none of them known to the online store: defaults, as served
        scores = score(batch, fraud, rng)
        decisions: list[Any] = ["decline" if s >= 0.5 else "approve" for s in scores]
        log.offer(
            score_events(
                batch,
                frame,
                Scores("v0001", 0.5, scores, decisions),
                model_name=MODEL,
                served_at=served_at,
                entity_keys=ASSEMBLER.entity_keys,
            )
        )
    log.close(timeout_s=120)
    assert metrics_registry.get_sample_value("berg_serving_prediction_log_sent_total") == len(transactions)


def send_labels(kafka: KafkaSettings, topic: str, labels: Sequence[SimulatedEvent]) -> list[int]:
    """Produce the labels keyed by user, in event order; the partition each went to."""
    producer = open_producer(kafka)
    futures = [producer.send(topic, value=label.value, key=label.key) for label in labels]
    producer.flush()
    partitions = [future.get(timeout=30).partition for future in futures]
    producer.close()
    return partitions


def register_model(root: Path) -> None:
    rng = np.random.default_rng(1)
    folder = root.parent / "artifacts"
    folder.mkdir()
    (folder / "model.bst").write_bytes(b"not read by monitoring")
    registry = ModelRegistry(root)
    metadata = VersionMetadata(
        metrics={"pr_auc": 0.9},
        reference_profile={
            "features": {"amount": distribution_profile(rng.lognormal(3, 1, 5000))},
            "prediction": distribution_profile(rng.beta(1, 8, 5000)),
        },
        lineage=Lineage(
            data_start=START - timedelta(days=60),
            data_end=START - timedelta(days=1),
            feature_service="fraud_model_v1",
            pipeline_run_id="label-clock-test",
            code_version="test",
        ),
        params={"threshold": 0.5},
    )
    registry.register(MODEL, folder, metadata)
    registry.promote(MODEL, "v0001", reason="test")


@pytest.fixture(scope="module")
def events() -> list[SimulatedEvent]:
    config = SimulationConfig(
        start=START, users=100, merchants=40, seed=11, scenario=make_scenario("label_delay_change", ONSET)
    )
    return list(bounded(simulate(config), until=END))


class Query:
    def __init__(self, stack: LocalStack, instance: str) -> None:
        self.url = f"http://127.0.0.1:{stack.settings.ports.prometheus}/api/v1/query"
        self.instance = instance

    def __call__(self, query: str) -> list[dict[str, Any]]:
        body = httpx.get(self.url, params={"query": query.replace("$i", f'instance="{self.instance}"')}, timeout=5)
        payload = body.json()
        assert payload["status"] == "success", payload
        return list(payload["data"]["result"])

    def value(self, query: str) -> float | None:
        found = self(query)
        assert len(found) <= 1, found
        return float(found[0]["value"][1]) if found else None

    def buckets(self) -> dict[float, float]:
        return {
            float(sample["metric"]["le"]): float(sample["value"][1])
            for sample in self(f'berg_monitoring_label_delay_seconds_bucket{{$i,model="{MODEL}"}}')
        }


@pytest.fixture(scope="module")
def exporter(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory, new_topic_module: Any
) -> Iterator[tuple[ServiceProcess, Query, str, str]]:
    root = tmp_path_factory.mktemp("label-clock")
    register_model(root / "registry")
    predictions, labels = new_topic_module(3), new_topic_module(3)
    process = ServiceProcess(
        "berg_monitoring",
        "BERG_MONITORING_",
        {
            "KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap,
            "MODEL_NAME": MODEL,
            "REGISTRY_URI": str(root / "registry"),
            "PREDICTIONS_TOPIC": predictions,
            "LABELS_TOPIC": labels,
            "RECOMPUTE_INTERVAL_S": "0.5",
            "REGISTRY_POLL_S": "0.5",
            # Fewer than the phase-1 explicit labels: a window of early labels would count as sufficient.
            "MIN_LABELS": str(MIN_LABELS),
            "MIN_POSITIVES": str(MIN_POSITIVES),
            "QUALITY_WINDOW": str(QUALITY_WINDOW),
            "LOGGING__JSON_FORMAT": "false",
        },
        root,
        "monitoring-label-clock",
    )
    process.start()
    scrape_name = f"monitoring-label-clock-{uuid.uuid4().hex[:6]}"
    try:
        process.wait_ready(600)
        assert process.alive(), process.log_path.read_text()
        instance = f"127.0.0.1:{process.port}"
        register_scrape_target(stack.layout, scrape_name, instance, {"service": "monitoring"})
        yield process, Query(stack, instance), predictions, labels
    finally:
        unregister_scrape_target(stack.layout, scrape_name)
        if process.alive():
            assert process.stop(30) == 0, process.log_path.read_text()


@pytest.fixture(scope="module")
def new_topic_module(stack: LocalStack) -> Iterator[Any]:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=stack.settings.kafka_bootstrap, client_id="berg-test-admin")

    def create(partitions: int) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        admin.create_topics([NewTopic(name, partitions, 1)])
        return name

    yield create
    admin.close()


def produce(
    kafka: KafkaSettings, predictions: str, labels: str, part: Sequence[SimulatedEvent], truth: Truth, seed: int
) -> None:
    transactions, label_events = split(part)
    fraud = {uuid.UUID(e.truth.subject_id) for e in part if e.kind == "scored" and e.truth.positive}
    serve(kafka, predictions, transactions, fraud, seed)
    truth.label_partitions.extend(send_labels(kafka, labels, label_events))
    truth.transactions.update((t.event_id, t.event_time) for t in transactions)
    truth.labels.extend(
        (uuid.UUID(e.truth.subject_id), e.event_time, LabelV1.model_validate_json(e.value).is_fraud)
        for e in label_events
    )


def wait_until_read(query: Query, truth: Truth) -> None:
    """Until Prometheus has scraped an exporter that has read every prediction and joined every label."""

    def read() -> bool:
        predicted = query.value(f'berg_monitoring_predictions_total{{$i,model="{MODEL}"}}')
        delays = query.value(f'berg_monitoring_label_delay_seconds_count{{$i,model="{MODEL}"}}')
        return predicted == len(truth.transactions) and delays == len(truth.labels)

    # Generous: it only bounds a hang (the exporter reads a few thousand records a second).
    wait_for(read, 300, "the exporter to read every record and Prometheus to scrape it", interval_s=0.5)


def assert_delays_are_the_simulated_ones(query: Query, truth: Truth) -> None:
    delays = truth.delays_s
    buckets = query.buckets()
    assert len(buckets) > 5, buckets
    assert buckets == {bound: float(np.count_nonzero(delays <= bound)) for bound in buckets}
    for quantile in (0.5, 0.9):
        estimate = query.value(
            f'histogram_quantile({quantile}, berg_monitoring_label_delay_seconds_bucket{{$i,model="{MODEL}"}})'
        )
        assert estimate is not None
        # The smallest delay with at least that share at or below it: the bucket it falls in is the one
        # Prometheus interpolates in.
        true = float(np.quantile(delays, quantile, method="inverted_cdf"))
        bounds = (0.0, *sorted(buckets))
        upper = next(b for b in bounds if b >= true)
        lower = max(b for b in bounds if b < upper) if upper > 0 else 0.0
        assert lower <= estimate <= upper, (quantile, true, estimate)


def counter(query: Query, outcome: str) -> float:
    return query.value(f'berg_monitoring_labels_total{{$i,outcome="{outcome}"}}') or 0.0


@pytest.mark.timeout(900)  # 18,000 predictions through serving's log and the exporter on a busy machine
def test_label_delays_and_horizons_run_on_the_transactions_clock(
    exporter: tuple[ServiceProcess, Query, str, str], events: list[SimulatedEvent], kafka_settings: KafkaSettings
) -> None:
    process, query, predictions, labels = exporter
    truth = Truth({}, [], [])
    first = [e for e in events if e.event_time < FIRST_PART_END]
    produce(kafka_settings, predictions, labels, first, truth, seed=1)
    wait_until_read(query, truth)
    # The delays are the simulated ones (on the serving time's clock each read 0: every label "before" serving).
    assert_delays_are_the_simulated_ones(query, truth)
    # Less than a horizon of event time: nothing has matured, and quality says so rather than judge early labels
    # (mostly frauds; there are enough of them for the exporter's minimums).
    assert len(truth.labels) >= MIN_LABELS
    assert sum(fraud for _, _, fraud in truth.labels) >= MIN_POSITIVES
    wait_for(
        lambda: query.value(f'berg_monitoring_quality_sufficient{{$i,model="{MODEL}",version="v0001"}}') == 0,
        60,
        "the exporter to report insufficient quality",
    )
    assert query.value(f'berg_monitoring_quality_labels{{$i,model="{MODEL}",version="v0001"}}') == 0
    assert query(f'berg_monitoring_quality_pr_auc{{$i,model="{MODEL}"}}') == []
    assert query(f'model_version:berg_monitoring_quality_pr_auc:drop_from_reference{{model="{MODEL}"}}') == []
    assert query(f'ALERTS{{alertname="ModelQualityDegraded",model="{MODEL}"}}') == []
    assert counter(query, "expired") == 0

    produce(kafka_settings, predictions, labels, [e for e in events if e.event_time >= FIRST_PART_END], truth, seed=2)
    wait_until_read(query, truth)
    assert_delays_are_the_simulated_ones(query, truth)
    # Serving wrote the transactions' clock into the log (read back with the partition each went to).
    logged = logged_predictions(kafka_settings, predictions, len(truth.transactions))
    assert {key: at for key, (at, _) in logged.items()} == truth.transactions
    # Every partition of both streams is read to its end: the watermark is the oldest of their newest times.
    newest: dict[tuple[str, int], datetime] = {}
    for at, partition in logged.values():
        newest[("scored", partition)] = max(at, newest.get(("scored", partition), at))
    for (_, at, _), partition in zip(truth.labels, truth.label_partitions, strict=True):
        newest[("labels", partition)] = max(at, newest.get(("labels", partition), at))
    watermark = min(newest.values())
    matured = truth.matured(watermark)
    within = truth.within_horizon()
    late = int(np.count_nonzero(truth.delays_s > HORIZON.total_seconds()))
    assert late > 0, "the scenario's longer delays put some labels past the horizon"
    window = matured[-QUALITY_WINDOW:]
    positives = sum(within.get(key, False) for key in window)
    assert len(window) >= MIN_LABELS
    assert positives >= MIN_POSITIVES

    def settled() -> bool:
        return counter(query, "expired") == sum(key not in within for key in matured)

    wait_for(settled, 120, "every transaction past its horizon to mature", interval_s=0.5)
    # The counters move as records are applied; the quality gauges come with the next recompute. The exporter
    # applies and recomputes on one thread, so a recompute that ended after the scrape that showed the counters
    # settled has seen every matured transaction.
    settled_at = datetime.now(UTC).timestamp()
    wait_for(
        lambda: (query.value("berg_monitoring_statistics_timestamp_seconds{$i}") or 0.0) > settled_at,
        120,
        "a recompute after the counters settled, scraped by Prometheus",
        interval_s=0.5,
    )
    assert counter(query, "late") == late
    assert counter(query, "joined") == len(truth.labels) - late
    assert query.value(f'berg_monitoring_quality_labels{{$i,model="{MODEL}",version="v0001"}}') == len(window)
    assert query.value(f'berg_monitoring_quality_sufficient{{$i,model="{MODEL}",version="v0001"}}') == 1
    assert query.value(f'berg_monitoring_quality_pr_auc{{$i,model="{MODEL}",version="v0001"}}') is not None
    # The data-volume count: matured transactions after the production version's training window.
    assert query.value(f'berg_monitoring_new_labelled_rows{{$i,model="{MODEL}"}}') == len(matured)
    assert process.alive()


def logged_predictions(kafka: KafkaSettings, topic: str, count: int) -> dict[uuid.UUID, tuple[datetime, int]]:
    """The prediction log's records: transaction -> (its event time as logged, the partition)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30_000,
    )
    found: dict[uuid.UUID, tuple[datetime, int]] = {}
    try:
        for record in consumer:
            prediction = PredictionV3.model_validate_json(record.value)
            found[prediction.scored_event_id] = (prediction.scored_event_time, record.partition)
            if len(found) == count:
                break
    finally:
        consumer.close()
    return found
