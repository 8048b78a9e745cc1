"""The scoring tally of `berg simulate --score-url`: what it counts from the endpoint's answers."""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from berg.simulator.traffic import TrafficPlan
from berg_app.simulator.scoring import Scorer, ScoringTally, scored_while_sent
from berg_fraud.simulator import FraudSimulator

pytestmark = pytest.mark.unit


def answer(*predictions: tuple[str, str, bool]) -> dict[str, object]:
    return {
        "predictions": [
            {"decision": decision, "model_version": version, "default_features_used": default}
            for decision, version, default in predictions
        ]
    }


def test_tally_counts_statuses_decisions_versions_and_defaults() -> None:
    tally = ScoringTally()
    tally.record("200", 0.010, answer(("approve", "v0001", False)), None)
    tally.record("200", 0.030, answer(("review", "v0002", True), ("approve", "v0002", False)), None)
    tally.record("400", 0.002, None, "amount: must be finite")
    tally.record("ConnectError", 0.001, None, "refused")
    assert tally.calls == 4
    assert tally.failed == 2
    assert tally.by_decision == {"approve": 2, "review": 1}
    assert tally.by_version == {"v0001": 1, "v0002": 2}
    assert tally.defaults_used == 1
    assert tally.errors == ["400: amount: must be finite", "ConnectError: refused"]
    assert tally.latency_quantile(0.5) == pytest.approx(np.quantile([0.010, 0.030, 0.002, 0.001], 0.5))


def test_tally_before_any_call() -> None:
    tally = ScoringTally()
    assert tally.calls == tally.failed == 0
    assert math.isnan(tally.latency_quantile(0.99))


class RecordingScorer:
    def __init__(self) -> None:
        self.submitted: list[bytes] = []

    def submit(self, event_json: bytes) -> None:
        self.submitted.append(event_json)


def test_only_valid_scored_events_are_scored_and_every_event_still_passes() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    plan = TrafficPlan(start=start, seed=5, scenario="malformed", onset=start, malformed_share=0.3)
    events = [event for _, event in zip(range(400), FraudSimulator().events(plan), strict=False)]
    scorer = RecordingScorer()
    passed = list(scored_while_sent(events, scorer))  # type: ignore[arg-type]
    assert passed == events
    assert scorer.submitted == [event.value for event in events if event.kind == "scored"]
    assert any(event.kind != "scored" for event in events)


class _SlowServing(BaseHTTPRequestHandler):
    """Answers each call after a pause, one prediction per instance."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        time.sleep(0.05)
        answer = json.dumps(
            {"predictions": [{"decision": "approve", "model_version": "v1"} for _ in body["instances"]]}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: object) -> None:
        return


def test_drain_returns_once_every_submitted_event_is_answered_and_the_scorer_goes_on() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowServing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/models/fraud:predict"
    try:
        scorer = Scorer(url, concurrency=2, batch=4)
        for _ in range(10):  # two full calls and two events waiting for a third
            scorer.submit(b"{}")
        assert scorer.drain().scored == 10
        for _ in range(3):
            scorer.submit(b"{}")
        assert scorer.drain().scored == 13
        assert scorer.drain().calls == 4  # nothing left: no empty call
        assert scorer.close().failed == 0
    finally:
        server.shutdown()
        server.server_close()
