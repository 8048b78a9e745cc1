"""The monitoring exporter compares champion and shadow from the real topics: Kafka in, ``/metrics`` out.

The champion's predictions, the shadow log (two shadow versions, decision flips) and the
labels (some after the horizon, some never) are written to fresh topics; the exporter reads
them from its lookback, and every shadow gauge it serves equals the brute force of
:mod:`services.monitoring.tests.shadow_traffic`. A shadow record that breaks the contract
reaches the dead-letter topic with its reason. Both installed use cases run it, each with its own label
contract, label join and horizon.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from services.monitoring.tests.shadow_traffic import SETTINGS, Traffic, brute_force, label_record, traffic

from berg.contracts.dead_letter import DeadLetterV1
from berg.kafka.topics import DEAD_LETTER
from berg.usecase import UseCase
from berg_app.stack.local import LocalStack
from berg_clicks.use_case import clicks
from berg_fraud.use_case import fraud
from tests.helpers import wait_for
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 1
"""One partition a topic, so the watermark is the brute force's: the older of the two streams' newest times."""

BROKEN_SCORE = 1.5


def write(stack: LocalStack, topics: dict[str, str], sent: Traffic, use_case: UseCase, model: str) -> None:
    """Predictions, shadow records and labels (each stream in event-time order), then one broken shadow record."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap)
    for prediction in sent.predictions:
        producer.send(topics["predictions"], prediction.model_dump_json().encode(), key=b"k")
    for shadow in sent.shadows:
        producer.send(topics["shadow"], shadow.model_dump_json().encode(), key=b"k")
    # Another model's shadow record of a request of its own: read past, never counted.
    other = sent.shadows[0].model_copy(
        update={"model_name": f"{model}other", "event_id": uuid.uuid4(), "scored_event_id": uuid.uuid4()}
    )
    producer.send(topics["shadow"], other.model_dump_json().encode(), key=b"k")
    broken = sent.shadows[0].model_dump(mode="json") | {"score": BROKEN_SCORE, "event_id": str(uuid.uuid4())}
    producer.send(topics["shadow"], json.dumps(broken).encode(), key=b"k")
    for verdict in sorted(sent.labels, key=lambda label: label.event_time):
        label = label_record(use_case, verdict.subject_id, verdict.positive, verdict.event_time)
        producer.send(topics["labels"], label.model_dump_json().encode(), key=b"k")
    producer.flush()
    producer.close()


def scrape(port: int, model: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every ``berg_monitoring_shadow_*`` sample of ``model``: (name, sorted labels but model) -> value."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k != "model"))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("berg_monitoring_shadow_") and sample.labels.get("model") == model
    }


def expected_samples(sent: Traffic) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for (champion, shadow), gauges in brute_force(sent, capacity=10**6).items():
        pair = (("champion_version", champion), ("shadow_version", shadow))
        for name in ("predictions", "labelled", "decision_agreement", "decision_flips", "score_psi"):
            samples[(f"berg_monitoring_shadow_{name}", pair)] = float(gauges[name])
        samples[("berg_monitoring_shadow_quality_sufficient", pair)] = float("champion" in gauges)
        for role in ("champion", "shadow"):
            if role in gauges:
                samples[("berg_monitoring_shadow_pr_auc", tuple(sorted((*pair, ("role", role)))))] = gauges[role]
    return samples


def dead_letters_of(stack: LocalStack, topic: str, timeout_s: float = 60) -> list[DeadLetterV1]:
    """The dead letters whose original topic is ``topic``, read from the start of ``berg.dlq``."""
    consumer = KafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap, group_id=None)
    try:
        partitions = [TopicPartition(DEAD_LETTER, p) for p in sorted(consumer.partitions_for_topic(DEAD_LETTER))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[DeadLetterV1] = []
        deadline = time.monotonic() + timeout_s
        while not found and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    letter = DeadLetterV1.from_headers(list(record.headers))
                    if letter.original_topic == topic:
                        found.append(letter)
        return found
    finally:
        consumer.close()


@pytest.fixture(params=[fraud, clicks], ids=["fraud", "clicks"])
def use_case(request: pytest.FixtureRequest) -> UseCase:
    """Each installed use case: its label contract and label join, its horizon."""
    made: UseCase = request.param()
    return made


@pytest.fixture
def exporter(
    stack: LocalStack, tmp_path: Path, new_topic: Callable[[int], str], use_case: UseCase
) -> Iterator[tuple[ServiceProcess, dict[str, str], Traffic, str]]:
    model = f"{use_case.name}{uuid.uuid4().hex[:6]}"
    sent = traffic(use_case, np.random.default_rng(11), model=model)
    topics = {name: new_topic(PARTITIONS) for name in ("predictions", "shadow", "labels")}
    write(stack, topics, sent, use_case, model)
    process = ServiceProcess(
        "berg_monitoring",
        "BERG_MONITORING_",
        {
            "KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap,
            "MODEL_NAME": model,
            "REGISTRY_URI": str(tmp_path / "registry"),
            "PREDICTIONS_TOPIC": topics["predictions"],
            "SHADOW_PREDICTIONS_TOPIC": topics["shadow"],
            "LABELS_TOPIC": topics["labels"],
            "RECOMPUTE_INTERVAL_S": "0.5",
            "MIN_DRIFT_ROWS": str(SETTINGS.min_rows),
            "MIN_LABELS": str(SETTINGS.min_labels),
            "MIN_POSITIVES": str(SETTINGS.min_positives),
            "LOGGING__JSON_FORMAT": "false",
        },
        tmp_path,
        f"monitoring-{model}",
        environment={"BERG_USE_CASE": use_case.name},
    )
    process.start()
    try:
        process.wait_ready(600)
        assert process.alive(), process.log_path.read_text()
        yield process, topics, sent, model
    finally:
        if process.alive():
            assert process.stop(30) == 0, process.log_tail()


def test_the_exporter_serves_the_shadow_gauges_a_brute_force_computes(
    stack: LocalStack, exporter: tuple[ServiceProcess, dict[str, str], Traffic, str]
) -> None:
    process, topics, sent, model = exporter
    expected = expected_samples(sent)
    # Every pair settles labels, flips decisions and holds both classes: the test is about something.
    assert all(v > 0 for k, v in expected.items() if k[0].endswith(("labelled", "decision_flips")))
    assert sum(k[0] == "berg_monitoring_shadow_pr_auc" for k in expected) == 4

    def served_as_computed() -> bool:
        served = scrape(process.port, model)
        return served.keys() == expected.keys() and served == pytest.approx(expected, rel=1e-9)

    try:
        wait_for(served_as_computed, 120, "the shadow gauges to equal the brute force")
    except AssertionError as error:
        served = scrape(process.port, model)
        differing = {k: (served.get(k), v) for k, v in expected.items() if served.get(k) != pytest.approx(v)}
        extra = served.keys() - expected.keys()
        raise AssertionError(f"differ: {differing}\nextra: {extra}\n{process.log_tail()}") from error
    assert process.metric("berg_monitoring_invalid_records_total", {"topic": topics["shadow"]}) == 1

    (letter,) = dead_letters_of(stack, topics["shadow"])
    assert (letter.stage, letter.reason) == ("monitoring", "contract_violation")
    assert "ShadowPredictionV1" in letter.error_message
    assert "score" in letter.error_message
