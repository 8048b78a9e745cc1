"""Shadow scoring in the real server processes, in both shapes that answer clients: the fused server, and
KServe's transformer in front of a predictor (the transformer shadows; the predictor never does).

The registry's ``shadow`` alias names ``v0002`` (the champion is ``v0001``); each card's share is 1.0 (the
default), so every scored event gets a ``ShadowPredictionV1`` on the server's shadow topic (the session's Kafka),
carrying the champion's answer. Once the alias is cleared, the servers report no shadow and write no more.
Both installed use cases run every case (``served_case``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from berg.contracts import ShadowPredictionV1
from berg.registry import ModelRegistry
from berg_app.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.serving.conftest import ServedCase, ServingProcess, create_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHAPES = ("fused", "transformer")


@pytest.fixture(scope="module")
def registry(served_case: ServedCase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copied = served_case.registry(tmp_path_factory.mktemp(f"shadow-{served_case.use_case}") / "registry")
    ModelRegistry(copied).promote(served_case.use_case, "v0002", alias="shadow", reason="shadow test")
    return copied


@pytest.fixture(scope="module")
def topics(served_case: ServedCase, stack: LocalStack) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    names = {shape: f"predictions-shadow-{served_case.use_case}-{shape}-{suffix}" for shape in SHAPES}
    return create_topics(stack.settings.kafka_bootstrap, names)


@pytest.fixture(scope="module")
def servers(
    served_case: ServedCase, registry: Path, start_server: Any, stack: LocalStack, topics: dict[str, str]
) -> Iterator[dict[str, ServingProcess]]:
    kafka = {"KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap, "PREDICTION_LOG__ENABLED": "true"}
    world = served_case.world
    predictor = start_server("predictor", world, registry, wait=False)
    fused = start_server("fused", world, registry, wait=False, SHADOW__TOPIC=topics["fused"], **kafka)
    transformer = start_server(
        "transformer",
        world,
        registry,
        wait=False,
        PREDICTOR__HOST=predictor.grpc_url,
        SHADOW__TOPIC=topics["transformer"],
        **kafka,
    )
    started = {"fused": fused, "transformer": transformer, "predictor": predictor}
    try:
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        # This use case's servers stop before the next one's start (the module's server fixture outlives both).
        for server in started.values():
            if server.alive():
                assert server.stop(60) == 0, server.log_tail()


def metric(server: ServingProcess, name: str) -> list[tuple[dict[str, str], float]]:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def records(bootstrap: str, topic: str, count: int) -> Iterator[ShadowPredictionV1]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        got: list[ShadowPredictionV1] = []

        def read() -> bool:
            for batch in consumer.poll(timeout_ms=200).values():
                got.extend(ShadowPredictionV1.model_validate_json(message.value) for message in batch)
            return len(got) >= count

        wait_for(read, 120, f"{count} shadow records on {topic}")
        assert consumer.end_offsets([partition])[partition] == count
        yield from got
    finally:
        consumer.close()


@pytest.mark.parametrize("shape", SHAPES)
def test_every_scored_event_is_shadowed_with_the_champions_answer_beside(
    servers: dict[str, ServingProcess],
    served_case: ServedCase,
    stack: LocalStack,
    topics: dict[str, str],
    shape: str,
) -> None:
    server, model = servers[shape], served_case.use_case
    wait_for(
        lambda: any(labels.get("version") == "v0002" for labels, _ in metric(server, "berg_serving_shadow_model_info")),
        120,
        "the shadow loaded",
    )
    rows = served_case.events(6, 41)
    response = httpx.post(f"{server.url}/v1/models/{model}:predict", json={"instances": rows}, timeout=30)
    assert response.status_code == 200, response.text
    answers = {p["scored_event_id"]: p for p in response.json()["predictions"]}
    shadowed = list(records(stack.settings.kafka_bootstrap, topics[shape], len(rows)))
    assert sorted(str(r.scored_event_id) for r in shadowed) == sorted(answers)
    for record in shadowed:
        answer = answers[str(record.scored_event_id)]
        assert str(record.prediction_event_id) == answer["prediction_id"]
        assert (record.champion_version, record.champion_score, record.champion_decision) == (
            "v0001",
            answer["score"],
            answer["decision"],
        )
        assert (record.shadow_version, record.threshold) == ("v0002", 0.45)
    assert metric(servers["predictor"], "berg_serving_shadow_predictions_total") == [({}, 0.0)]


def test_a_cleared_alias_stops_the_shadow(
    servers: dict[str, ServingProcess], served_case: ServedCase, registry: Path
) -> None:
    model = served_case.use_case
    ModelRegistry(registry).clear(model, "shadow", reason="shadow test over")
    for shape in SHAPES:
        server = servers[shape]
        wait_for(
            lambda server=server: metric(server, "berg_serving_shadow_model_info")[0][0].get("version") == "",
            60,
            f"the {shape} server to drop its shadow",
        )
        before = metric(server, "berg_serving_shadow_predictions_total")
        rows = served_case.events(3, 43)
        response = httpx.post(f"{server.url}/v1/models/{model}:predict", json={"instances": rows}, timeout=30)
        assert response.status_code == 200, response.text
        assert metric(server, "berg_serving_shadow_queue_rows") == [({}, 0.0)]
        assert metric(server, "berg_serving_shadow_predictions_total") == before
