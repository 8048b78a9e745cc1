"""Blocking work runs on thread pools: the event loop keeps serving while Feast reads and XGBoost predicts."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

from berg_serving.champion import ChampionSlot
from berg_serving.decisions import DecisionPolicy
from berg_serving.online import FeastOnlineFeatures
from berg_serving.scorers import LocalScorer, ModelUnavailableError
from tests.fraud_serving import ASSEMBLER

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class BlockingChampion:
    """Predicts only once ``release`` is set, and records the thread it ran on."""

    version = "v0009"
    threshold = 0.5
    features = ("a", "b")

    def __init__(self) -> None:
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        self.thread = threading.current_thread()
        assert self.release.wait(5)
        return np.full(len(matrix), 0.75)


async def test_prediction_runs_on_a_worker_while_the_loop_serves_others() -> None:
    champion = BlockingChampion()
    slot = ChampionSlot()
    slot.current = champion  # type: ignore[assignment]
    scorer = LocalScorer(slot, DecisionPolicy(decline_at=0.9), threads=1)
    scoring = asyncio.create_task(scorer.score({"b": np.array([1.0]), "a": np.array([np.nan])}))
    await asyncio.sleep(0.05)  # the loop runs other work while the prediction is blocked
    assert not scoring.done()
    champion.release.set()
    scores = await scoring
    assert champion.thread is not threading.main_thread()
    assert (scores.model_version, scores.scores, scores.decisions) == ("v0009", [0.75], ["review"])
    await scorer.close()


async def test_no_champion_is_model_unavailable() -> None:
    scorer = LocalScorer(ChampionSlot(), DecisionPolicy(), threads=1)
    assert not scorer.ready()
    with pytest.raises(ModelUnavailableError):
        await scorer.score({"a": np.array([1.0])})
    await scorer.close()


class FakeStore:
    """Stands in for a FeatureStore: records which thread reads it."""

    registry = object()

    def __init__(self, threads: list[str]) -> None:
        self.threads = threads

    def get_online_features(self, features: list[str], entity_rows: list[dict[str, str]]) -> Any:
        self.threads.append(threading.current_thread().name)
        values = {name.split(":")[1]: [None] * len(entity_rows) for name in features}

        class Response:
            def to_dict(self) -> dict[str, list[Any]]:
                return values

        return Response()


async def test_lookups_run_on_their_threads_each_with_its_own_store() -> None:
    opened: list[FakeStore] = []
    reads: list[str] = []

    def open_store() -> Any:
        opened.append(FakeStore(reads))
        return opened[-1]

    online = FeastOnlineFeatures(open_store, ASSEMBLER.online_refs, threads=2)
    await asyncio.to_thread(online.warm_up, [{"user_id": "u", "merchant_id": "m"}])
    assert len(opened) == 2  # one store per lookup thread, opened before the first request
    values = await online.lookup([{"user_id": "u", "merchant_id": "m"}])
    assert values["tx_count_1h"] == [None]
    assert all(name.startswith("feast-lookup") for name in reads)
    online.close()
