"""Score simulated events against a serving endpoint, as the application that produces them would.

``berg simulate --score-url URL`` hands each valid scored event to a
:class:`Scorer` while the same record goes to Kafka: a few threads
POST it to the V1 endpoint (``{"instances": [<event>]}``, one event
per call like a request made at decision time), and a :class:`ScoringTally` counts the
answers: HTTP status, decision, model version and latency. The number of calls
in flight is bounded, so a slow endpoint slows the simulation instead of piling
up threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import httpx
import numpy as np

from berg.simulator.traffic import SimulatedEvent

__all__ = ["Scorer", "ScoringTally", "scored_while_sent"]

_ERROR_EXAMPLES = 3


@dataclass
class ScoringTally:
    """What the endpoint answered, so far."""

    by_status: Counter[str] = field(default_factory=Counter)
    """HTTP status code (``"200"``, ``"400"``...) or the transport error's name."""
    by_decision: Counter[str] = field(default_factory=Counter)
    by_version: Counter[str] = field(default_factory=Counter)
    defaults_used: int = 0
    """Events scored with default features (an entity unknown to the online store)."""
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """The first few non-2xx answers, for the summary."""

    @property
    def calls(self) -> int:
        return sum(self.by_status.values())

    @property
    def scored(self) -> int:
        """Events that got a prediction back."""
        return sum(self.by_decision.values())

    @property
    def failed(self) -> int:
        """Calls that did not answer 2xx (transport errors included)."""
        return sum(count for status, count in self.by_status.items() if not status.startswith("2"))

    def latency_quantile(self, q: float) -> float:
        """The ``q`` quantile of call latency in seconds (NaN before any call)."""
        return float(np.quantile(self.latencies_s, q)) if self.latencies_s else float("nan")

    def record(self, status: str, elapsed_s: float, body: object, error: str | None) -> None:
        """Count one answer (``body`` is the decoded JSON of a 2xx answer)."""
        self.by_status[status] += 1
        self.latencies_s.append(elapsed_s)
        if error is not None:
            if len(self.errors) < _ERROR_EXAMPLES:
                self.errors.append(f"{status}: {error}")
            return
        predictions = body.get("predictions") if isinstance(body, dict) else None
        for prediction in predictions if isinstance(predictions, list) else ():
            if isinstance(prediction, dict):
                self.by_decision[str(prediction.get("decision"))] += 1
                self.by_version[str(prediction.get("model_version"))] += 1
                self.defaults_used += bool(prediction.get("default_features_used"))


class Scorer:
    """POSTs scored events to a V1 predict URL on ``concurrency`` threads; at most twice that many calls wait.

    ``batch`` events go in one call (1: one request per event, as an application asks at decision
    time; more: a faster replay of a day's traffic).

    Example:
        >>> with Scorer(f"http://127.0.0.1:8104/v1/models/{use_case.name}:predict") as scorer:
        ...     scorer.submit(event_json)
        >>> scorer.tally.by_decision
    """

    def __init__(self, url: str, *, concurrency: int = 4, timeout_s: float = 10.0, batch: int = 1) -> None:
        if concurrency < 1 or batch < 1:
            raise ValueError(f"concurrency and batch must be at least 1, not {concurrency} and {batch}")
        self.url = url
        self._batch = batch
        self._waiting: list[bytes] = []
        self.tally = ScoringTally()
        self._client = httpx.Client(timeout=timeout_s, headers={"content-type": "application/json"})
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="berg-score")
        self._slots = threading.BoundedSemaphore(2 * concurrency)
        self._lock = threading.Lock()
        self._in_flight: set[Future[None]] = set()

    def submit(self, event_json: bytes) -> None:
        """Score one event (its contract JSON) in the background, ``batch`` per call; waits while too many
        calls are pending."""
        self._waiting.append(event_json)
        if len(self._waiting) >= self._batch:
            self._send()

    def _send(self) -> None:
        body = b'{"instances":[' + b",".join(self._waiting) + b"]}"
        self._waiting = []
        self._slots.acquire()
        try:
            future = self._pool.submit(self._score, body)
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self._in_flight.add(future)
        future.add_done_callback(self._landed)

    def _landed(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)

    def drain(self) -> ScoringTally:
        """Send what waits for a full batch and wait until every call so far has been answered (the scorer
        stays open: a replay scores a slice, drains, then produces it)."""
        if self._waiting:
            self._send()
        with self._lock:
            pending = list(self._in_flight)
        wait(pending)
        return self.tally

    def _score(self, body: bytes) -> None:
        started = time.perf_counter()
        try:
            response = self._client.post(self.url, content=body)
        except httpx.HTTPError as error:
            self._record(type(error).__name__, time.perf_counter() - started, None, str(error))
            return
        finally:
            self._slots.release()
        elapsed = time.perf_counter() - started
        status = str(response.status_code)
        if response.is_success:
            try:
                self._record(status, elapsed, response.json(), None)
            except json.JSONDecodeError:
                self._record(status, elapsed, None, "the answer is not JSON")
        else:
            self._record(status, elapsed, None, response.text[:200])

    def _record(self, status: str, elapsed_s: float, body: object, error: str | None) -> None:
        with self._lock:
            self.tally.record(status, elapsed_s, body, error)

    def close(self) -> ScoringTally:
        """Send what waits for a full batch, wait for every call, then release the threads and connections."""
        if self._waiting:
            self._send()
        self._pool.shutdown(wait=True)
        self._client.close()
        return self.tally

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def scored_while_sent(events: Iterable[SimulatedEvent], scorer: Scorer) -> Iterator[SimulatedEvent]:
    """``events`` unchanged, each valid scored event handed to ``scorer`` as it passes on its way to Kafka."""
    for event in events:
        if event.kind == "scored":
            scorer.submit(event.value)
        yield event
