"""The monitoring exporter on the real stack: Kafka in, Prometheus scraping, the rules firing, Alertmanager told.

Two exporters run side by side over the same span, each for its own model with
its own topics and registry: one is fed traffic like its training data, the
other the same traffic with one feature shifted (covariate shift). The shifted
model's FeatureDriftHigh fires in Prometheus after its ``for:`` and reaches
Alertmanager; the baseline model raises nothing, not even a pending alert.
A restarted exporter rebuilds its windows from the topics.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from kafka import KafkaProducer

from berg.contracts import LabelV1
from berg.contracts.predictions import PredictionV1
from berg.registry import ModelRegistry
from berg.registry.metadata import Lineage, VersionMetadata
from berg.stack.local import LocalStack
from berg.stack.monitoring_config import register_scrape_target, unregister_scrape_target
from berg_pipelines.runtime.profile import distribution_profile
from tests.helpers import wait_for
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 600
NOW = datetime.now(UTC)


def register_model(root: Path, model: str, rng: np.random.Generator) -> None:
    """v0001 in production, with a reference profile of x ~ N(0, 1), amount ~ lognormal, scores ~ beta."""
    registry = ModelRegistry(root)
    folder = root.parent / f"{model}-artifacts"
    folder.mkdir()
    (folder / "model.bst").write_bytes(b"not read by monitoring")
    profile = {
        "features": {
            "x": distribution_profile(rng.normal(0, 1, 5000)),
            "amount": distribution_profile(rng.lognormal(3, 1, 5000)),
        },
        "prediction": distribution_profile(rng.beta(1, 8, 5000)),
    }
    metadata = VersionMetadata(
        metrics={"pr_auc": 0.8},
        reference_profile=profile,
        lineage=Lineage(
            data_start=NOW - timedelta(days=60),
            data_end=NOW - timedelta(days=30),
            feature_service="fraud_model_v1",
            pipeline_run_id="monitoring-test",
            code_version="test",
        ),
        params={"features": ["x", "amount"], "threshold": 0.5},
    )
    registry.register(model, folder, metadata)
    registry.promote(model, "v0001", reason="test")


def traffic(model: str, shift: float, rng: np.random.Generator) -> Iterator[tuple[PredictionV1, LabelV1]]:
    for n in range(ROWS):
        fraud = bool(rng.random() < 0.1)
        score = float(np.clip(rng.beta(1, 8) + (0.5 if fraud else 0.0), 0, 1))
        transaction = uuid.uuid4()
        served = NOW - timedelta(days=3) + timedelta(seconds=n)
        prediction = PredictionV1(
            event_id=uuid.uuid4(),
            event_time=served,
            transaction_event_id=transaction,
            user_id=f"u-{n % 50}",
            merchant_id="m-1",
            model_name=model,
            model_version="v0001",
            features={"x": float(rng.normal(shift, 1)), "amount": float(rng.lognormal(3, 1))},
            score=score,
            threshold=0.5,
            decision="review" if score >= 0.5 else "approve",
        )
        label = LabelV1(
            event_id=uuid.uuid4(),
            event_time=served + timedelta(days=1),
            transaction_event_id=transaction,
            user_id=prediction.user_id,
            is_fraud=fraud,
        )
        yield prediction, label


class Exporter:
    def __init__(self, stack: LocalStack, model: str, shift: float, root: Path, new_topic: Any) -> None:
        rng = np.random.default_rng(abs(hash(model)) % 2**32)
        self.model = model
        registry = root / "registry"
        register_model(registry, model, rng)
        self.predictions, self.labels = new_topic(3), new_topic(3)
        producer = KafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap)
        for prediction, label in traffic(model, shift, rng):
            producer.send(self.predictions, prediction.model_dump_json().encode(), key=prediction.user_id.encode())
            producer.send(self.labels, label.model_dump_json().encode(), key=label.user_id.encode())
        producer.send(self.labels, b"{not json", key=b"u-0")  # dead-lettered, counted
        producer.flush()
        producer.close()
        self.process = ServiceProcess(
            "berg_monitoring",
            "BERG_MONITORING_",
            {
                "KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap,
                "MODEL_NAME": model,
                "REGISTRY_URI": str(registry),
                "PREDICTIONS_TOPIC": self.predictions,
                "LABELS_TOPIC": self.labels,
                "RECOMPUTE_INTERVAL_S": "0.5",
                "NEW_LABELLED_ROWS_THRESHOLD": "100000",
                "LOGGING__JSON_FORMAT": "false",
            },
            root,
            f"monitoring-{model}",
        )
        self.process.start()
        try:
            self.process.wait_ready(120)  # returns once ready, or once the process has died
            assert self.process.alive(), self.process.log_path.read_text()
        except BaseException:
            self.process.kill9()
            raise
        self.scrape_name = f"monitoring-{model}"
        register_scrape_target(
            stack.layout, self.scrape_name, f"127.0.0.1:{self.process.port}", {"service": "monitoring"}
        )

    def metric(self, name: str, **labels: str) -> float:
        return self.process.metric(name, {"model": self.model, **labels})


@pytest.fixture(scope="module")
def exporters(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Exporter]]:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=stack.settings.kafka_bootstrap, client_id="berg-test-admin")

    def new_topic(partitions: int) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        admin.create_topics([NewTopic(name, partitions, 1)])
        return name

    suffix = uuid.uuid4().hex[:6]
    started: dict[str, Exporter] = {}
    try:
        for kind, shift in (("steady", 0.0), ("shifted", 2.0)):
            started[kind] = Exporter(stack, f"{kind}{suffix}", shift, tmp_path_factory.mktemp(kind), new_topic)
    except BaseException:
        for exporter in started.values():
            exporter.process.kill9()
        raise
    finally:
        admin.close()
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
            lambda e=exporter: e.metric("berg_monitoring_quality_labels", version="v0001") == ROWS,
            60,
            f"{exporter.model}'s windows to fill",
        )
        assert exporter.metric("berg_monitoring_predictions_total", version="v0001") == ROWS
        assert exporter.process.metric("berg_monitoring_invalid_records_total") == 1
        assert exporter.metric("berg_monitoring_quality_sufficient", version="v0001") == 1
        assert exporter.metric("berg_monitoring_reference_pr_auc", version="v0001") == 0.8
        # Every label arrived 1 day after its prediction, after the training window (30 days ago) ended.
        assert exporter.metric("berg_monitoring_new_labelled_rows") == ROWS
        assert exporter.metric("berg_monitoring_label_coverage_ratio", version="v0001") == 1.0
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
    steady.process.wait_ready(90)
    wait_for(
        lambda: steady.metric("berg_monitoring_quality_labels", version="v0001") == ROWS,
        60,
        "the restarted exporter to read the topics again",
    )
    assert steady.metric("berg_monitoring_feature_psi", version="v0001", feature="x") == pytest.approx(before)
