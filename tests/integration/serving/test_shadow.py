"""Shadow scoring under concurrent load, against the session's real Kafka.

The fused server's app (Berg's ASGI app with the direct V1 route, the ``Transformer`` with the champion
on its ``LocalScorer``) runs in this process so that the shadow can be a stand-in that blocks or raises;
the shadow's queue, its thread and its Kafka producer are the real ones, writing to a fresh topic on
the session's broker. 8 clients send 240 requests (1 to 3 events each) at once:

- a shadow that blocks until every answer is back: each answer is 200 and the same as a run without
  shadow (so none waited for it), and the records consumed from the topic are exactly the sampled
  events (:func:`is_shadowed` of each scored event id), each carrying the champion's answer for it;
  with a queue of 5 rows, what did not fit is counted as dropped, and what is consumed plus what was
  dropped is exactly the sampled events;
- a shadow that raises: the same answers, no record, one failure counted per sampled row.

Both use cases (fraud and clicks) run every case.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry
from services.serving.tests.helpers import register, transaction_fields, wait_for
from services.serving.tests.test_features import merchant_row, online, user_row

from berg.contracts import ShadowPredictionV1
from berg.kafka.producer import open_producer
from berg.observability.health import ReadinessChecks
from berg.registry import ModelRegistry
from berg.settings import KafkaSettings
from berg.usecase import UseCase
from berg.web.app import WebSettings
from berg_app.stack.local import LocalStack
from berg_clicks.use_case import clicks
from berg_fraud.use_case import fraud
from berg_serving.champion import Champion, ChampionSlot, load_champion
from berg_serving.decisions import DecisionPolicy
from berg_serving.features import FeatureAssembler
from berg_serving.metrics import ServingMetrics
from berg_serving.models import Transformer
from berg_serving.scorers import LocalScorer
from berg_serving.scoring_request import ScoringContract
from berg_serving.server import ServingServer
from berg_serving.settings import ServingSettings
from berg_serving.shadow import ShadowScoring
from berg_serving.shadow_sampling import is_shadowed
from tests.use_cases import impression

pytestmark = [pytest.mark.integration]

SHARE = 0.5
CLIENTS = 8
REQUESTS = 240
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HANG_S = 120.0
"""Only bounds a hang (a broken test), never a measurement."""


class FraudRows:
    """Every user and merchant has a stored row: the champion scores real feature values."""

    async def lookup(self, entity_rows: list[dict[str, str]]) -> dict[str, list[Any]]:
        return online(*[(user_row(), merchant_row())] * len(entity_rows))

    async def close(self) -> None:
        return None


class NoRows:
    """An online store that knows nobody (the clicks case's features come from the event itself then)."""

    async def lookup(self, entity_rows: list[dict[str, str]]) -> dict[str, list[Any]]:
        return {}

    async def close(self) -> None:
        return None


def fraud_body(index: int) -> dict[str, Any]:
    rows = [
        transaction_fields(event_id=str(uuid.uuid4()), user_id=f"user-{index}-{n}", amount=5.0 + (index * 7 + n) % 400)
        for n in range(1 + index % 3)
    ]
    return {"instances": rows}


def clicks_body(index: int) -> dict[str, Any]:
    events = [impression(index * 3 + n, NOW - timedelta(minutes=n)) for n in range(1 + index % 3)]
    rows = [{**e.model_dump(mode="json", exclude={"schema_version"}), "event_id": str(uuid.uuid4())} for e in events]
    return {"instances": rows}


@dataclass(frozen=True)
class Case:
    use_case: UseCase
    assembler: FeatureAssembler
    online: Any
    body: Callable[[int], dict[str, Any]]


CASES = {
    "fraud": lambda: Case(fraud(), FeatureAssembler(fraud().features), FraudRows(), fraud_body),
    "clicks": lambda: Case(clicks(), FeatureAssembler(clicks().features), NoRows(), clicks_body),
}


class BlockedShadow(Champion):
    """A shadow that waits for ``released`` before every prediction (a slow challenger, as slow as the test says)."""

    released = threading.Event()

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        if not self.released.wait(HANG_S):
            raise AssertionError("the test never released the shadow")
        return super().predict(matrix)


class RaisingShadow(Champion):
    def predict(self, matrix: np.ndarray) -> np.ndarray:
        raise RuntimeError("the challenger is broken")


@contextmanager
def released_at_the_end() -> Iterator[None]:
    """Release :class:`BlockedShadow` when the block ends, however it ends, so that its thread can stop."""
    try:
        yield
    finally:
        BlockedShadow.released.set()


def as_shadow(kind: type[Champion], loaded: Champion) -> Champion:
    return kind(loaded.name, loaded.version, loaded.booster, loaded.features, loaded.threshold)


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    made: Case = CASES[request.param]()
    return made


@pytest.fixture
def models(case: Case, tmp_path: Path) -> tuple[Champion, Champion]:
    """The champion (threshold 0.4) and the challenger (another model, threshold 0.3) over the case's features."""
    registry = ModelRegistry(tmp_path / "registry")
    features = list(case.assembler.servable)
    champion = register(registry, tmp_path / "c", features, threshold=0.4, seed=1)
    challenger = register(
        registry,
        tmp_path / "s",
        features,
        threshold=0.3,
        seed=2,
    )
    return load_champion(registry, "fraud", champion), load_champion(registry, "fraud", challenger)


@pytest.fixture
def shadow_topic(stack: LocalStack) -> str:
    admin = KafkaAdminClient(bootstrap_servers=stack.settings.kafka_bootstrap, client_id="berg-test-admin")
    try:
        name = f"predictions-shadow-{uuid.uuid4().hex[:10]}"
        admin.create_topics([NewTopic(name, 3, 1)])
    finally:
        admin.close()
    return name


@dataclass
class Run:
    answers: dict[int, dict[str, Any]]
    """Request index -> the V1 answer's body."""
    statuses: list[int]


def serve_load(
    case: Case,
    champion: Champion,
    bodies: list[dict[str, Any]],
    shadow: ShadowScoring | None,
    prometheus: CollectorRegistry,
    metrics: ServingMetrics,
) -> Run:
    """``bodies`` from :data:`CLIENTS` concurrent clients through the fused server's app."""
    slot = ChampionSlot()
    slot.current = champion
    transformer = Transformer(
        case.use_case.name,
        ScoringContract(case.use_case.scored.contract),
        case.online,
        case.assembler,
        LocalScorer(slot, DecisionPolicy(), threads=2),
        None,
        metrics,
        max_batch=4,
        rules=[],
        clock=lambda: NOW + timedelta(minutes=1),
        shadow=shadow,
    )
    readiness = ReadinessChecks()
    readiness.add("model", transformer.is_ready)
    server = ServingServer(
        ServingSettings(web=WebSettings(max_body_bytes=50_000), max_batch=4),
        transformer,
        readiness,
        prometheus,
        case.use_case.scored.contract,
    )
    answers: dict[int, dict[str, Any]] = {}
    statuses: list[int] = []

    async def client(indexes: list[int]) -> None:
        transport = httpx.ASGITransport(app=server.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://serving") as http:
            for index in indexes:
                response = await http.post(
                    f"/v1/models/{case.use_case.name}:predict",
                    content=orjson.dumps(bodies[index]),
                    headers={"content-type": "application/json"},
                )
                statuses.append(response.status_code)
                answers[index] = response.json()

    async def load() -> None:
        await asyncio.gather(*(client(list(range(n, len(bodies), CLIENTS))) for n in range(CLIENTS)))

    asyncio.run(load())
    return Run(answers, statuses)


@dataclass
class Shadow:
    scoring: ShadowScoring
    prometheus: CollectorRegistry
    metrics: ServingMetrics

    def serve(self, case: Case, champion: Champion, bodies: list[dict[str, Any]]) -> Run:
        """:func:`serve_load` with this shadow beside ``champion``, its metrics in :attr:`prometheus`."""
        return serve_load(case, champion, bodies, self.scoring, self.prometheus, self.metrics)


@contextmanager
def shadow_scoring(case: Case, shadow: Champion, topic: str, bootstrap: str, capacity: int) -> Iterator[Shadow]:
    """The real shadow queue, thread and Kafka producer, over ``shadow``; closed at the end."""
    prometheus = CollectorRegistry()
    metrics = ServingMetrics.register(prometheus)
    slot = ChampionSlot()
    slot.current = shadow
    scoring = ShadowScoring(
        slot,
        DecisionPolicy(),
        lambda: open_producer(KafkaSettings(bootstrap_servers=bootstrap, client_id="berg-shadow-test"), linger_ms=5),
        topic,
        capacity,
        share=SHARE,
        metrics=metrics,
        key=case.use_case.scored.key,
    )
    scoring.start()
    try:
        yield Shadow(scoring, prometheus, metrics)
    finally:
        scoring.close(5.0)


def consume(bootstrap: str, topic: str, count: int) -> Iterator[ShadowPredictionV1]:
    """The topic's first ``count`` records (all of them, once the end offsets say there are no more)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1000)
    try:
        wait_for(lambda: topic in consumer.topics(), HANG_S, f"the metadata of {topic}")
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        assert partitions
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        got = 0
        deadline = datetime.now(UTC) + timedelta(seconds=HANG_S)
        while got < count and datetime.now(UTC) < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for message in batch:
                    got += 1
                    yield ShadowPredictionV1.model_validate_json(message.value)
        assert sum(consumer.end_offsets(partitions).values()) == count
    finally:
        consumer.close()


def sample(metrics: CollectorRegistry, name: str, **labels: str) -> float:
    return metrics.get_sample_value(name, labels) or 0.0


def scored_events(run: Run) -> dict[str, dict[str, Any]]:
    """Scored event id -> the champion's answer for it."""
    return {p["scored_event_id"]: p for body in run.answers.values() for p in body["predictions"]}


def without_ids(run: Run) -> dict[int, list[tuple[Any, ...]]]:
    """The answers without the fresh prediction ids: what a run without shadow answers too."""
    keys = ("scored_event_id", "score", "decision", "threshold", "model_version", "default_features_used")
    return {index: [tuple(p[k] for k in keys) for p in body["predictions"]] for index, body in run.answers.items()}


@pytest.fixture
def bodies(case: Case) -> list[dict[str, Any]]:
    return [case.body(index) for index in range(REQUESTS)]


@pytest.fixture
def baseline(case: Case, models: tuple[Champion, Champion], bodies: list[dict[str, Any]]) -> Run:
    """The answers of a run without shadow."""
    prometheus = CollectorRegistry()
    run = serve_load(case, models[0], bodies, None, prometheus, ServingMetrics.register(prometheus))
    assert run.statuses == [200] * REQUESTS
    return run


@pytest.mark.parametrize("capacity", [10_000, 5])
def test_a_slow_shadow_scores_exactly_the_sampled_events_and_no_answer_waits_for_it(
    case: Case,
    models: tuple[Champion, Champion],
    bodies: list[dict[str, Any]],
    baseline: Run,
    shadow_topic: str,
    stack: LocalStack,
    capacity: int,
) -> None:
    champion, challenger = models
    bootstrap = stack.settings.kafka_bootstrap
    BlockedShadow.released.clear()
    with (
        shadow_scoring(case, as_shadow(BlockedShadow, challenger), shadow_topic, bootstrap, capacity) as shadow,
        released_at_the_end(),
    ):
        metrics = shadow.prometheus
        run = shadow.serve(case, champion, bodies)
        # Every answer is back while the shadow has scored nothing: none of them waited for it.
        assert sample(metrics, "berg_serving_shadow_predictions_total") == 0
        assert run.statuses == [200] * REQUESTS
        assert without_ids(run) == without_ids(baseline)
        answered = scored_events(run)
        sampled = {event_id for event_id in answered if is_shadowed(uuid.UUID(event_id), SHARE)}
        assert 0 < len(sampled) < len(answered)
        BlockedShadow.released.set()
        dropped = sample(metrics, "berg_serving_shadow_dropped_total", reason="queue_full")
        expected = len(sampled) - int(dropped)
        wait_for(
            lambda: sample(metrics, "berg_serving_shadow_predictions_total") == expected, HANG_S, "the shadow records"
        )
        records = list(consume(bootstrap, shadow_topic, expected))
    ids = [str(record.scored_event_id) for record in records]
    assert len(ids) == len(set(ids)) == expected
    if capacity >= len(sampled):
        assert dropped == 0
        assert set(ids) == sampled
    else:
        assert dropped > 0
        assert set(ids) < sampled
    for record in records:
        answer = answered[str(record.scored_event_id)]
        assert str(record.prediction_event_id) == answer["prediction_id"]
        assert (record.champion_score, record.champion_decision, record.champion_version) == (
            answer["score"],
            answer["decision"],
            answer["model_version"],
        )
        assert (record.shadow_version, record.threshold) == (challenger.version, 0.3)
        assert record.decision == DecisionPolicy().decide(record.score, 0.3)
    assert sample(metrics, "berg_serving_shadow_failures_total", reason="score") == 0


def test_a_shadow_that_raises_changes_no_answer_and_writes_no_record(
    case: Case,
    models: tuple[Champion, Champion],
    bodies: list[dict[str, Any]],
    baseline: Run,
    shadow_topic: str,
    stack: LocalStack,
) -> None:
    champion, challenger = models
    bootstrap = stack.settings.kafka_bootstrap
    with shadow_scoring(case, as_shadow(RaisingShadow, challenger), shadow_topic, bootstrap, 10_000) as shadow:
        metrics = shadow.prometheus
        run = shadow.serve(case, champion, bodies)
        assert run.statuses == [200] * REQUESTS
        assert without_ids(run) == without_ids(baseline)
        sampled = [event_id for event_id in scored_events(run) if is_shadowed(uuid.UUID(event_id), SHARE)]
        wait_for(
            lambda: sample(metrics, "berg_serving_shadow_failures_total", reason="score") == len(sampled),
            HANG_S,
            "a failure per sampled event",
        )
    assert list(consume(bootstrap, shadow_topic, 0)) == []
    assert sample(metrics, "berg_serving_shadow_predictions_total") == 0
