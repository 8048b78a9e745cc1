"""XGBoost runs on a thread pool, except for batches small enough that the hop would cost more than the trees."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from berg_serving.champion import ChampionSlot
from berg_serving.decisions import DecisionPolicy
from berg_serving.scorers import LocalScorer, ModelUnavailableError

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


class RecordingChampion:
    """Predicts at once, and records the thread of each call."""

    version = "v0010"
    threshold = 0.5
    features = ("a",)

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        self.threads.append(threading.current_thread())
        return np.full(len(matrix), 0.25)


async def test_batches_up_to_the_inline_rows_are_scored_on_the_loop_and_larger_ones_on_a_worker() -> None:
    champion = RecordingChampion()
    slot = ChampionSlot()
    slot.current = champion  # type: ignore[assignment]
    scorer = LocalScorer(slot, DecisionPolicy(), threads=1, inline_rows=1)
    one = await scorer.score({"a": np.array([1.0])})
    two = await scorer.score({"a": np.array([1.0, 2.0])})
    assert (one.scores, two.scores) == ([0.25], [0.25, 0.25])
    assert champion.threads[0] is threading.current_thread()
    assert champion.threads[1] is not threading.current_thread()
    await scorer.close()
