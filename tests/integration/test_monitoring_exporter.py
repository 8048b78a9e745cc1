"""The monitoring exporter on the real stack: Kafka in, Prometheus scraping, the rules firing, Alertmanager told.

Two exporters run side by side over the same span, each for its own model with
its own topics and registry: one is fed traffic like its training data, the
other the same traffic with one feature shifted (covariate shift). The shifted
model's FeatureDriftHigh fires in Prometheus after its ``for:`` and reaches
Alertmanager; the baseline model raises nothing, not even a pending alert.
A restarted exporter rebuilds its windows from the topics. Once production moves
to a new version, the old one falls silent after the grace period: its series go
from Prometheus, its firing alert resolves, and a restart keeps it silent.

Drift is measured over whole cycles of event time: these two spread their traffic
over months, so their cycle is 30 days and their window the newest two cycles. A
third exporter watches traffic with a daily cycle, as a payment system's has, with
the default cycle of a day: through part of a day it exports no drift at all, and
once a whole day is in, the day reads as its reference's days do.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from kafka import KafkaProducer

from berg.registry import ModelRegistry
from berg.registry.metadata import Lineage, VersionMetadata
from berg_app.stack.local import LocalStack
from berg_app.stack.monitoring_config import register_scrape_target, unregister_scrape_target
from berg_fraud.contracts import LabelV1
from berg_fraud.predictions import PredictionV2
from berg_pipelines.runtime.profile import distribution_profile
from tests.helpers import wait_for, wait_for_progress
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 600
NOW = datetime.now(UTC)
HORIZON = timedelta(days=30)  # the fraud card's label horizon
# Transactions spread over 120 days of event time, each labelled a day later; labels run on the transactions'
# clock, and a transaction matures (its label is final) once both streams are a horizon past it.
FIRST = NOW - timedelta(days=125)
STEP = timedelta(days=120) / ROWS
TIMES = [FIRST + n * STEP for n in range(ROWS)]
PARTITIONS = 3
# Row n goes to partition n % 3 of both topics. The watermark is the oldest of the partitions' newest event times:
# the last row of the slowest partition, three rows from the end.
MATURED = sum(t <= TIMES[-PARTITIONS] - HORIZON for t in TIMES)
GRACE_S = 10.0
CYCLE = timedelta(days=30)
CYCLES = 2
# The drift window: the newest two whole cycles of the transactions' event time.
WINDOW_ROWS = sum(t > TIMES[-1] - CYCLES * CYCLE for t in TIMES)


FRAUD_SHARE = 0.1


def scores(rng: np.random.Generator, fraud: np.ndarray[Any, np.dtype[np.bool_]]) -> np.ndarray[Any, Any]:
    """A model's scores: beta(1, 8), half a point higher for fraud. The reference scores are drawn the same
    way: a reference of the legitimate scores alone would put a PSI of 0.05 to 0.15 on steady traffic
    (and above 0.2 now and then, a pending PredictionDriftHigh for the model whose traffic is its training's)."""
    return np.clip(rng.beta(1, 8, len(fraud)) + 0.5 * fraud, 0, 1)


def register_model(
    root: Path, model: str, rng: np.random.Generator, version: str = "v0001", features: dict[str, Any] | None = None
) -> None:
    """A version with a reference profile of x ~ N(0, 1) (or ``features``), amount ~ lognormal, and the scores
    :func:`traffic` gives; v0001 is promoted."""
    registry = ModelRegistry(root)
    folder = root.parent / f"{model}-{version}-artifacts"
    folder.mkdir()
    (folder / "model.bst").write_bytes(b"not read by monitoring")
    profile = {
        "features": {
            **(features if features is not None else {"x": distribution_profile(rng.normal(0, 1, 5000))}),
            "amount": distribution_profile(rng.lognormal(3, 1, 5000)),
        },
        "prediction": distribution_profile(scores(rng, rng.random(5000) < FRAUD_SHARE)),
    }
    metadata = VersionMetadata(
        metrics={"pr_auc": 0.8},
        reference_profile=profile,
        lineage=Lineage(
            data_start=FIRST - timedelta(days=60),
            data_end=FIRST - timedelta(days=1),
            feature_service="fraud_model_v1",
            pipeline_run_id="monitoring-test",
            code_version="test",
        ),
        params={"features": ["x", "amount"], "threshold": 0.5},
    )
    assert registry.register(model, folder, metadata).version == version
    if version == "v0001":
        registry.promote(model, version, reason="test")


def traffic(
    model: str,
    shift: float,
    rng: np.random.Generator,
    version: str = "v0001",
    times: Sequence[datetime] = TIMES,
    features: Callable[[datetime], dict[str, float]] | None = None,
) -> Iterator[tuple[PredictionV2, LabelV1]]:
    """A prediction and its label (a day later) for each of ``times``; x ~ N(shift, 1) unless ``features``.

    The predictions are in the fraud case's legacy v2 (``UseCase.legacy_predictions``): the exporter reads them as
    today's version, so this also proves that records written before an upgrade still count."""
    for n, happened in enumerate(times):
        fraud = bool(rng.random() < FRAUD_SHARE)
        score = float(scores(rng, np.array([fraud]))[0])
        transaction = uuid.uuid4()
        own = features(happened) if features is not None else {"x": float(rng.normal(shift, 1))}
        prediction = PredictionV2(
            event_id=uuid.uuid4(),
            transaction_event_id=transaction,
            transaction_event_time=happened,
            served_at=NOW + timedelta(milliseconds=n),
            user_id=f"u-{n % 50}",
            merchant_id="m-1",
            model_name=model,
            model_version=version,
            features={**own, "amount": float(rng.lognormal(3, 1))},
            score=score,
            threshold=0.5,
            decision="review" if score >= 0.5 else "approve",
        )
        label = LabelV1(
            event_id=uuid.uuid4(),
            event_time=happened + timedelta(days=1),
            transaction_event_id=transaction,
            user_id=prediction.user_id,
            is_fraud=fraud,
        )
        yield prediction, label


class Exporter:
    def __init__(
        self,
        stack: LocalStack,
        model: str,
        root: Path,
        new_topic: Any,
        records: Callable[[np.random.Generator], Iterator[tuple[PredictionV2, LabelV1]]],
        *,
        reference: Callable[[np.random.Generator], dict[str, Any]] | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        rng = np.random.default_rng(abs(hash(model)) % 2**32)
        self.model = model
        self.rng = rng
        self.registry = root / "registry"
        register_model(self.registry, model, rng, features=reference(rng) if reference is not None else None)
        self.predictions, self.labels = new_topic(PARTITIONS), new_topic(PARTITIONS)
        self.bootstrap = stack.settings.kafka_bootstrap
        self.produce(records(rng), extra_labels=[b"{not json"])  # dead-lettered, counted
        self.process = ServiceProcess(
            "berg_monitoring",
            "BERG_MONITORING_",
            {
                "KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap,
                "MODEL_NAME": model,
                "REGISTRY_URI": str(self.registry),
                "PREDICTIONS_TOPIC": self.predictions,
                "LABELS_TOPIC": self.labels,
                "RECOMPUTE_INTERVAL_S": "0.5",
                "REGISTRY_POLL_S": "0.5",
                "RETIRED_GRACE_S": str(GRACE_S),
                "NEW_LABELLED_ROWS_THRESHOLD": "100000",
                "LOGGING__JSON_FORMAT": "false",
                **(settings or {}),
            },
            root,
            f"monitoring-{model}",
        )
        self.process.start()
        try:
            self.process.wait_ready(600)  # returns once ready, or once the process has died
            assert self.process.alive(), self.process.log_path.read_text()
        except BaseException:
            self.process.kill9()
            raise
        self.scrape_name = f"monitoring-{model}"
        register_scrape_target(
            stack.layout, self.scrape_name, f"127.0.0.1:{self.process.port}", {"service": "monitoring"}
        )

    def produce(self, records: Iterator[tuple[PredictionV2, LabelV1]], extra_labels: Sequence[bytes] = ()) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap)
        for n, (prediction, label) in enumerate(records):
            key, partition = prediction.user_id.encode(), n % PARTITIONS
            producer.send(self.predictions, prediction.model_dump_json().encode(), key=key, partition=partition)
            producer.send(self.labels, label.model_dump_json().encode(), key=key, partition=partition)
        for value in extra_labels:
            producer.send(self.labels, value, key=b"u-0")
        producer.flush()
        producer.close()

    def metric(self, name: str, **labels: str) -> float:
        return self.process.metric(name, {"model": self.model, **labels})

    def versions_exported(self, name: str) -> Set[str]:
        """The versions that have a ``name`` sample on the exporter's /metrics now."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"http://127.0.0.1:{self.process.port}/metrics", timeout=5).text
        return {
            sample.labels["version"]
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and sample.labels.get("model") == self.model
        }


@pytest.fixture(scope="module")
def new_topic(stack: LocalStack) -> Iterator[Callable[[int], str]]:
    """Creates a topic of a fresh name with that many partitions."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=stack.settings.kafka_bootstrap, client_id="berg-test-admin")

    def create(partitions: int) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        admin.create_topics([NewTopic(name, partitions, 1)])
        return name

    yield create
    admin.close()


@pytest.fixture(scope="module")
def exporters(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory, new_topic: Callable[[int], str]
) -> Iterator[dict[str, Exporter]]:
    suffix = uuid.uuid4().hex[:6]
    started: dict[str, Exporter] = {}
    monthly = {"DRIFT_CYCLE_S": str(CYCLE.total_seconds()), "DRIFT_CYCLES": str(CYCLES)}
    try:
        for kind, shift in (("steady", 0.0), ("shifted", 2.0)):
            model = f"{kind}{suffix}"
            started[kind] = Exporter(
                stack,
                model,
                tmp_path_factory.mktemp(kind),
                new_topic,
                lambda rng, model=model, shift=shift: traffic(model, shift, rng),
                settings=monthly,
            )
    except BaseException:
        for exporter in started.values():
            exporter.process.kill9()
        raise
    yield started
    for exporter in started.values():
        unregister_scrape_target(stack.layout, exporter.scrape_name)
        assert exporter.process.stop(30) == 0, exporter.process.log_path.read_text()


def prometheus(stack: LocalStack, query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{stack.settings.ports.prometheus}/api/v1/query"
    body = httpx.get(url, params={"query": query}, timeout=5).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def alertmanager_alerts(stack: LocalStack, alertname: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{stack.settings.ports.alertmanager}/api/v2/alerts"
    return list(httpx.get(url, params={"filter": f'alertname="{alertname}"'}, timeout=5).json())


def test_exporter_measures_drift_and_quality_from_the_topics(exporters: dict[str, Exporter]) -> None:
    steady, shifted = exporters["steady"], exporters["shifted"]
    for exporter in (steady, shifted):
        wait_for(
            lambda e=exporter: e.metric("berg_monitoring_quality_labels", version="v0001") == MATURED,
            60,
            f"{exporter.model}'s windows to fill",
        )
        assert exporter.metric("berg_monitoring_predictions_total", version="v0001") == ROWS
        assert exporter.process.metric("berg_monitoring_invalid_records_total") == 1
        assert exporter.metric("berg_monitoring_quality_sufficient", version="v0001") == 1
        assert exporter.metric("berg_monitoring_reference_pr_auc", version="v0001") == 0.8
        # Every label came a day after its transaction (on the transactions' clock, not the serving time)...
        assert exporter.metric("berg_monitoring_label_delay_seconds_bucket", le="86400.0") == ROWS
        assert exporter.metric("berg_monitoring_label_delay_seconds_bucket", le="21600.0") == 0
        assert exporter.metric("berg_monitoring_label_coverage_ratio", version="v0001") == 1.0
        # ...and the transactions a horizon older than both streams have matured, all after the training window.
        assert exporter.process.metric("berg_monitoring_labels_total", {"outcome": "joined"}) == ROWS
        assert exporter.metric("berg_monitoring_new_labelled_rows") == MATURED
        # Drift over the newest two whole cycles of the transactions' event time.
        assert exporter.metric("berg_monitoring_drift_sufficient", version="v0001") == 1
        assert exporter.metric("berg_monitoring_drift_window_seconds", version="v0001") == 2 * CYCLE.total_seconds()
        assert exporter.metric("berg_monitoring_drift_window_predictions", version="v0001") == WINDOW_ROWS
    assert shifted.metric("berg_monitoring_feature_psi", version="v0001", feature="x") > 1.0
    assert steady.metric("berg_monitoring_feature_psi", version="v0001", feature="x") < 0.1
    assert shifted.metric("berg_monitoring_feature_psi", version="v0001", feature="amount") < 0.1


def test_covariate_shift_fires_feature_drift_in_prometheus_and_reaches_alertmanager(
    stack: LocalStack, exporters: dict[str, Exporter]
) -> None:
    steady, shifted = exporters["steady"], exporters["shifted"]
    firing = f'ALERTS{{alertname="FeatureDriftHigh",alertstate="firing",model="{shifted.model}"}}'
    # The rule's `for: 2m` plus scrapes and evaluations (1 s each here).
    wait_for(lambda: bool(prometheus(stack, firing)), 240, "FeatureDriftHigh to fire for the shifted model")
    [alert] = prometheus(stack, firing)
    assert alert["metric"]["feature"] == "x"
    assert alert["metric"]["version"] == "v0001"
    wait_for(
        lambda: any(a["labels"].get("model") == shifted.model for a in alertmanager_alerts(stack, "FeatureDriftHigh")),
        60,
        "Alertmanager to hold the alert",
    )
    # Over the same span the steady model raised nothing, not even a pending alert.
    assert prometheus(stack, f'max_over_time(ALERTS{{model="{steady.model}"}}[10m])') == []
    assert prometheus(stack, f'berg_monitoring_feature_psi{{model="{steady.model}",feature="x"}} < 0.2') != []


def test_a_restarted_exporter_rebuilds_its_windows_from_the_topics(exporters: dict[str, Exporter]) -> None:
    steady = exporters["steady"]
    before = steady.metric("berg_monitoring_feature_psi", version="v0001", feature="x")
    assert steady.process.stop(30) == 0
    steady.process.start()
    steady.process.wait_ready(600)
    wait_for(
        lambda: steady.metric("berg_monitoring_quality_labels", version="v0001") == MATURED,
        60,
        "the restarted exporter to read the topics again",
    )
    assert steady.metric("berg_monitoring_feature_psi", version="v0001", feature="x") == pytest.approx(before)


@pytest.mark.timeout(900)  # run alone, it waits for the drift alert's `for: 2m` before the grace period
def test_a_version_out_of_production_falls_silent_and_its_alert_resolves(
    stack: LocalStack, exporters: dict[str, Exporter]
) -> None:
    shifted = exporters["shifted"]
    model = shifted.model

    def v0001_alerts() -> list[dict[str, Any]]:
        return prometheus(stack, f'ALERTS{{alertname="FeatureDriftHigh",model="{model}",version="v0001"}}')

    wait_for(
        lambda: any(a["metric"]["alertstate"] == "firing" for a in v0001_alerts()),
        240,
        "FeatureDriftHigh to fire for the shifted model's v0001",
    )
    # A challenger, v0002, serves traffic like its training data; then production moves to it.
    register_model(shifted.registry, model, shifted.rng, version="v0002")
    shifted.produce(traffic(model, 0.0, shifted.rng, version="v0002"))
    v0002_rows = f'berg_monitoring_drift_window_predictions{{model="{model}",version="v0002"}} == {WINDOW_ROWS}'
    wait_for(lambda: bool(prometheus(stack, v0002_rows)), 60, "Prometheus to scrape v0002's window")
    promoted = ModelRegistry(shifted.registry).promote(model, "v0002", reason="test").moved_at

    def v0001_gone() -> bool:
        # Every series of v0001 but the counter of predictions consumed (and its _created), which stays.
        name = '__name__=~"berg_monitoring_.+",__name__!~"berg_monitoring_predictions_(total|created)"'
        return not prometheus(stack, f'{{{name},model="{model}",version="v0001"}}')

    wait_for(v0001_gone, GRACE_S + 120, "v0001's series to leave Prometheus")
    assert datetime.now(UTC) >= promoted + timedelta(seconds=GRACE_S), "silenced before the grace period ended"
    wait_for(lambda: not v0001_alerts(), 60, "the alert about v0001 to resolve")
    # The counter of what was consumed stays; every drift and quality series of v0001 is gone; v0002's stay.
    assert shifted.metric("berg_monitoring_predictions_total", version="v0001") == ROWS
    for name in ("feature_psi", "prediction_psi", "drift_window_predictions", "drift_sufficient", "quality_sufficient"):
        assert shifted.versions_exported(f"berg_monitoring_{name}") == {"v0002"}, name
    for name in ("quality_pr_auc", "reference_pr_auc", "label_coverage_ratio"):
        assert "v0001" not in shifted.versions_exported(f"berg_monitoring_{name}"), name
    assert prometheus(stack, f'berg_monitoring_feature_psi{{model="{model}",version="v0002",feature="x"}} < 0.2')
    # A restarted exporter reads the move from the registry's history: v0001 stays silent from the start.
    assert shifted.process.stop(30) == 0
    shifted.process.start()
    shifted.process.wait_ready(600)
    wait_for(
        lambda: shifted.metric("berg_monitoring_drift_window_predictions", version="v0002") == WINDOW_ROWS,
        60,
        "the restarted exporter to read the topics again",
    )
    assert shifted.metric("berg_monitoring_predictions_total", version="v0001") == ROWS
    assert shifted.versions_exported("berg_monitoring_feature_psi") == {"v0002"}
    assert shifted.versions_exported("berg_monitoring_drift_window_predictions") == {"v0002"}


# A day's traffic as a payment system has it: busy 07-22 UTC, a tenth of that at night, 1,000 transactions a day.
DAY0 = (NOW - timedelta(days=10)).replace(hour=0, minute=0, second=0, microsecond=0)
BUSY = np.where((np.arange(24) >= 7) & (np.arange(24) < 22), 1.0, 0.1)
PER_DAY = 1_000


def daily_times(rng: np.random.Generator, start_h: int, hours: int) -> list[datetime]:
    """Event times from ``start_h`` hours after DAY0 for ``hours`` hours, in order (a Poisson count per hour)."""
    hour = np.arange(start_h, start_h + hours)
    counts = rng.poisson(PER_DAY * BUSY[hour % 24] / BUSY.sum())
    offsets = np.sort(np.repeat(hour * 3600.0, counts) + rng.uniform(0, 3600, counts.sum()))
    return [DAY0 + timedelta(seconds=float(offset)) for offset in offsets]


def hour_of_day(happened: datetime) -> dict[str, float]:
    return {"hour_of_day": float(happened.hour)}


@pytest.fixture
def daily(
    stack: LocalStack, tmp_path: Path, new_topic: Callable[[int], str]
) -> Iterator[tuple[Exporter, list[datetime], list[datetime]]]:
    """An exporter with the default cycle (a day) over a model whose reference is ten whole days of the daily
    cycle, fed the first 16 hours of a day (their times come back, with those of the rest of the day and the next
    morning, not produced yet)."""
    times = np.random.default_rng(21)
    reference_days = [t.hour for t in daily_times(times, -240, 240)]
    first, rest = daily_times(times, 0, 16), daily_times(times, 16, 18)
    model = f"daily{uuid.uuid4().hex[:6]}"
    exporter = Exporter(
        stack,
        model,
        tmp_path,
        new_topic,
        lambda rng: traffic(model, 0.0, rng, times=first, features=hour_of_day),
        reference=lambda rng: {"hour_of_day": distribution_profile(np.asarray(reference_days, dtype=np.float64))},
    )
    yield exporter, first, rest
    unregister_scrape_target(stack.layout, exporter.scrape_name)
    assert exporter.process.stop(30) == 0, exporter.process.log_path.read_text()


def test_a_daily_cycle_reads_no_drift_through_part_of_a_day_and_none_over_a_whole_one(
    stack: LocalStack, daily: tuple[Exporter, list[datetime], list[datetime]]
) -> None:
    exporter, first, rest = daily
    model = exporter.model
    selector = f'model="{model}",version="v0001"'

    def scraped(rows: int) -> bool:
        return bool(prometheus(stack, f"berg_monitoring_drift_window_predictions{{{selector}}} == {rows}"))

    wait_for_progress(
        lambda: scraped(len(first)),
        lambda: exporter.metric("berg_monitoring_predictions_total", version="v0001"),
        "Prometheus to scrape the first 16 hours' window",
    )
    # 16 hours of the day, hundreds of predictions: no drift gauge, only the word that the window is partial.
    assert len(first) > 200
    for name in ("feature_psi", "feature_ks", "prediction_psi"):
        assert prometheus(stack, f"max_over_time(berg_monitoring_{name}{{{selector}}}[10m])") == [], name
    assert prometheus(stack, f"berg_monitoring_drift_sufficient{{{selector}}} == 0")
    [span] = prometheus(stack, f"berg_monitoring_drift_window_seconds{{{selector}}}")
    assert float(span["value"][1]) < 16 * 3600

    # The rest of the day and the next morning: the window is the newest whole day.
    exporter.produce(traffic(model, 0.0, exporter.rng, times=rest, features=hour_of_day))
    whole_day = sum(t > rest[-1] - timedelta(days=1) for t in first + rest)
    wait_for_progress(
        lambda: scraped(whole_day),
        lambda: exporter.metric("berg_monitoring_predictions_total", version="v0001"),
        "Prometheus to scrape the whole day's window",
    )
    assert prometheus(stack, f"berg_monitoring_drift_sufficient{{{selector}}} == 1")
    assert prometheus(stack, f"berg_monitoring_drift_window_seconds{{{selector}}} == 86400")
    [psi] = prometheus(stack, f'berg_monitoring_feature_psi{{{selector},feature="hour_of_day"}}')
    assert float(psi["value"][1]) < 0.05, "a whole day of the reference's traffic reads as the reference"
    # Over the whole span, no drift alert about the model, not even a pending one.
    assert prometheus(stack, f'max_over_time(ALERTS{{model="{model}"}}[10m])') == []
