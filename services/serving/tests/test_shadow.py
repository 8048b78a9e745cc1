"""Shadow scoring's own parts, for both use cases: which events are sampled, the record of one, the queue's
drop accounting, the scoring thread (with a stand-in producer; the real broker is in
tests/integration/serving/test_shadow.py) and the watcher that follows the ``shadow`` alias."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from services.serving.tests.helpers import NOW, register, transaction, wait_for
from services.serving.tests.test_features import online
from services.serving.tests.test_prediction_log import Producer

from berg.contracts import ShadowPredictionV1
from berg.registry import ModelRegistry
from berg.usecase import UseCase
from berg_clicks.use_case import clicks
from berg_fraud.use_case import fraud
from berg_serving.champion import Champion, ChampionSlot, ChampionWatcher, load_champion
from berg_serving.decisions import DecisionPolicy
from berg_serving.features import FeatureAssembler
from berg_serving.metrics import ServingMetrics
from berg_serving.predictions import ScoredEvent, Scores, score_events
from berg_serving.shadow import ShadowScoring
from berg_serving.shadow_records import shadow_record
from berg_serving.shadow_sampling import is_shadowed
from tests.use_cases import impression

pytestmark = pytest.mark.unit

POLICY = DecisionPolicy(decline_at=0.9)


@dataclass(frozen=True)
class Case:
    """A use case's scored events as serving holds them after the champion answered."""

    use_case: UseCase
    assembler: FeatureAssembler

    def scored(self, count: int, *, first: int = 0) -> list[ScoredEvent]:
        if self.use_case.name == "fraud":
            events = [transaction(user_id=f"user-{first + i}", amount=10.0 + first + i) for i in range(count)]
            rows = online(*[(None, None)] * count)
        else:
            events = [impression(first + i + 1, NOW - timedelta(minutes=i)) for i in range(count)]
            rows = {}
        frame = self.assembler.assemble(events, rows)
        values = [0.25 + 0.5 * (i % 2) for i in range(count)]
        scores = Scores("v0001", 0.5, values, POLICY.decide_all(values, 0.5))
        return score_events(
            events,
            frame,
            scores,
            model_name=self.use_case.name,
            served_at=NOW,
            entity_keys=self.assembler.entity_keys,
        )

    @property
    def key(self) -> str:
        return self.use_case.scored.key


@pytest.fixture(params=["fraud", "clicks"])
def case(request: pytest.FixtureRequest) -> Case:
    use_case = fraud() if request.param == "fraud" else clicks()
    return Case(use_case, FeatureAssembler(use_case.features))


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


def sample(metrics: CollectorRegistry, name: str, **labels: str) -> float:
    return metrics.get_sample_value(name, labels) or 0.0


# Sampling


def test_sampling_is_a_function_of_the_scored_event_id() -> None:
    ids = [uuid.UUID(int=i) for i in range(10_000)]
    first = [is_shadowed(event_id, 0.3) for event_id in ids]
    assert first == [is_shadowed(event_id, 0.3) for event_id in ids]
    # Deterministic ids, so the count is fixed; the bound only says the hash spreads them (4 standard deviations).
    assert abs(sum(first) - 3000) < 4 * (10_000 * 0.3 * 0.7) ** 0.5


def test_a_larger_share_keeps_every_event_a_smaller_one_kept() -> None:
    ids = [uuid.uuid4() for _ in range(2000)]
    small = {event_id for event_id in ids if is_shadowed(event_id, 0.1)}
    large = {event_id for event_id in ids if is_shadowed(event_id, 0.6)}
    assert small < large
    assert all(is_shadowed(event_id, 1.0) for event_id in ids)
    assert not any(is_shadowed(event_id, 0.0) for event_id in ids)


# The record


def test_a_record_carries_the_champions_answer_beside_the_shadows(case: Case) -> None:
    scored = case.scored(2)
    shadow = Scores("v0002", 0.4, [0.45, 0.95], POLICY.decide_all([0.45, 0.95], 0.4))
    scored_at = NOW + timedelta(seconds=3)
    records = [shadow_record(item, shadow, row, scored_at=scored_at) for row, item in enumerate(scored)]
    for item, record in zip(scored, records, strict=True):
        assert record.prediction_event_id == item.prediction_id
        assert record.scored_event_id == item.event_id
        assert record.scored_event_time == item.event_time
        assert record.served_at == NOW
        assert record.shadow_scored_at == scored_at
        assert record.entities == {key: str(getattr(item.event, key)) for key in case.assembler.entity_keys}
        assert record.model_name == case.use_case.name
        assert (record.champion_version, record.champion_score, record.champion_decision) == (
            "v0001",
            item.score,
            item.decision,
        )
        assert record.champion_threshold == 0.5
        assert ShadowPredictionV1.model_validate_json(record.model_dump_json()) == record
    assert [(r.shadow_version, r.threshold) for r in records] == [("v0002", 0.4)] * 2
    assert [(r.score, r.decision) for r in records] == [(0.45, "review"), (0.95, "decline")]
    assert records[0].event_id != records[1].event_id


# The queue


def shadow_of(case: Case, registry: ModelRegistry, tmp_path: Path, *, threshold: float = 0.3) -> Champion:
    version = register(registry, tmp_path / "shadow-model", list(case.assembler.servable), threshold=threshold, seed=3)
    return load_champion(registry, "fraud", version)


def scoring(
    slot: ChampionSlot, producer: Producer, metrics: CollectorRegistry, case: Case, *, capacity: int, share: float
) -> ShadowScoring:
    return ShadowScoring(
        slot,
        POLICY,
        lambda: producer,
        "predictions.shadow",
        capacity,
        share=share,
        metrics=ServingMetrics.register(metrics),
        key=case.key,
    )


def test_a_full_queue_drops_and_counts_each_row_it_cannot_hold(
    case: Case, registry: ModelRegistry, tmp_path: Path
) -> None:
    slot = ChampionSlot()
    slot.current = shadow_of(case, registry, tmp_path)
    metrics = CollectorRegistry()
    shadow = scoring(slot, Producer(), metrics, case, capacity=3, share=1.0)  # not started: nothing leaves
    shadow.offer(case.scored(5))
    assert sample(metrics, "berg_serving_shadow_dropped_total", reason="queue_full") == 2
    assert sample(metrics, "berg_serving_shadow_queue_rows") == 3


def test_nothing_is_queued_while_no_shadow_is_set(case: Case) -> None:
    metrics = CollectorRegistry()
    shadow = scoring(ChampionSlot(), Producer(), metrics, case, capacity=3, share=1.0)
    shadow.offer(case.scored(5))
    assert sample(metrics, "berg_serving_shadow_queue_rows") == 0
    assert sample(metrics, "berg_serving_shadow_dropped_total", reason="queue_full") == 0


def test_only_the_sampled_events_are_queued(case: Case, registry: ModelRegistry, tmp_path: Path) -> None:
    slot = ChampionSlot()
    slot.current = shadow_of(case, registry, tmp_path)
    metrics = CollectorRegistry()
    shadow = scoring(slot, Producer(), metrics, case, capacity=1000, share=0.5)
    scored = case.scored(40)
    shadow.offer(scored)
    expected = sum(is_shadowed(item.event_id, 0.5) for item in scored)
    assert 0 < expected < 40  # the ids of the case hit both sides
    assert sample(metrics, "berg_serving_shadow_queue_rows") == expected


# The scoring thread


def test_the_thread_scores_each_sampled_row_with_the_shadow_and_its_threshold(
    case: Case, registry: ModelRegistry, tmp_path: Path
) -> None:
    slot = ChampionSlot()
    slot.current = shadow = shadow_of(case, registry, tmp_path, threshold=0.3)
    metrics = CollectorRegistry()
    producer = Producer()
    scoring_thread = scoring(slot, producer, metrics, case, capacity=100, share=1.0)
    scoring_thread.start()
    first, second = case.scored(3), case.scored(4, first=10)  # two requests: two frames in one batch
    scoring_thread.offer(first)
    scoring_thread.offer(second)
    wait_for(lambda: sample(metrics, "berg_serving_shadow_predictions_total") == 7, 30, "7 shadow predictions")
    scoring_thread.close(5.0)
    records = [ShadowPredictionV1.model_validate_json(value) for _, _, value in producer.sent]
    assert {topic for topic, _, _ in producer.sent} == {"predictions.shadow"}
    assert [key.decode() for _, key, _ in producer.sent] == [
        str(getattr(item.event, case.key)) for item in first + second
    ]
    expected = np.concatenate(
        [shadow.predict(batch[0].frame.matrix(shadow.features)) for batch in (first, second)]
    ).tolist()
    assert [r.score for r in records] == pytest.approx(expected, abs=1e-7)
    assert [r.decision for r in records] == POLICY.decide_all([r.score for r in records], 0.3)
    assert [r.scored_event_id for r in records] == [item.event_id for item in first + second]
    assert [r.champion_score for r in records] == [item.score for item in first + second]
    assert {(r.shadow_version, r.threshold) for r in records} == {(shadow.version, 0.3)}
    assert producer.closed


class RaisingShadow(Champion):
    def predict(self, matrix: np.ndarray) -> np.ndarray:
        raise RuntimeError("the shadow is broken")


def test_a_shadow_that_raises_is_counted_and_sends_nothing(case: Case, registry: ModelRegistry, tmp_path: Path) -> None:
    loaded = shadow_of(case, registry, tmp_path)
    slot = ChampionSlot()
    slot.current = RaisingShadow(loaded.name, loaded.version, loaded.booster, loaded.features, loaded.threshold)
    metrics = CollectorRegistry()
    producer = Producer()
    scoring_thread = scoring(slot, producer, metrics, case, capacity=100, share=1.0)
    scoring_thread.start()
    scoring_thread.offer(case.scored(5))
    wait_for(lambda: sample(metrics, "berg_serving_shadow_failures_total", reason="score") == 5, 30, "5 failures")
    scoring_thread.close(5.0)
    assert producer.sent == []
    assert sample(metrics, "berg_serving_shadow_predictions_total") == 0


# The watcher


def test_the_shadow_watcher_loads_the_alias_and_empties_when_it_is_cleared(
    case: Case, registry: ModelRegistry, tmp_path: Path
) -> None:
    version = register(registry, tmp_path / "m", list(case.assembler.servable), threshold=0.3)
    metrics = ServingMetrics.register(prometheus := CollectorRegistry())
    slot = ChampionSlot()
    watcher = ChampionWatcher(registry, "fraud", "shadow", slot, 0.01, metrics.shadow_watch, empty_when_unset=True)
    assert not watcher.poll()
    assert slot.current is None
    registry.promote("fraud", version, alias="shadow")
    assert watcher.poll()
    assert slot.current is not None
    assert slot.current.version == version
    assert sample(prometheus, "berg_serving_shadow_model_info", model="fraud", version=version, threshold="0.3") == 1
    registry.clear("fraud", "shadow")
    assert not watcher.poll()
    assert slot.current is None
    assert sample(prometheus, "berg_serving_shadow_model_info", model="fraud", version="", threshold="") == 1


def test_a_shadow_that_cannot_load_is_counted_and_leaves_the_champion_alone(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    features = ["amount", "hour"]
    champion_version = register(registry, tmp_path / "c", features)
    broken = register(registry, tmp_path / "b", features, params={"features": features})  # no threshold
    registry.promote("fraud", champion_version)
    registry.promote("fraud", broken, alias="shadow")
    metrics = ServingMetrics.register(prometheus := CollectorRegistry())
    champion_slot, shadow_slot = ChampionSlot(), ChampionSlot()
    champion = ChampionWatcher(registry, "fraud", "production", champion_slot, 0.01, metrics.champion_watch)
    shadow = ChampionWatcher(
        registry, "fraud", "shadow", shadow_slot, 0.01, metrics.shadow_watch, empty_when_unset=True
    )
    assert champion.poll()
    assert not shadow.poll()
    assert shadow_slot.current is None
    assert champion_slot.current is not None
    assert champion_slot.current.version == champion_version
    assert sample(prometheus, "berg_serving_shadow_failures_total", reason="load") == 1
    assert sample(prometheus, "berg_serving_model_load_failures_total") == 0


def test_the_production_watcher_keeps_its_champion_when_the_alias_is_cleared(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    version = register(registry, tmp_path / "c", ["amount"])
    registry.promote("fraud", version)
    slot = ChampionSlot()
    watcher = ChampionWatcher(
        registry, "fraud", "production", slot, 0.01, ServingMetrics.register(CollectorRegistry()).champion_watch
    )
    assert watcher.poll()
    registry.clear("fraud", "production")
    watcher.poll()
    assert slot.current is not None
    assert slot.current.version == version
