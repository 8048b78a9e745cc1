"""The demo's live traffic: versions in the order they answered, failures counted, pacing that hurries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from berg_app.lifecycle.live import MIXED, LiveTally, LiveTraffic, version_runs


def test_version_runs_keep_order_and_count_repeats() -> None:
    assert version_runs([]) == []
    assert version_runs(["a", "a", "b", "b", "b"]) == [("a", 2), ("b", 3)]
    # A flap is two switches, not one: the summary must show it.
    assert version_runs(["a", "b", "a"]) == [("a", 1), ("b", 1), ("a", 1)]


def test_tally_counts_transactions_per_version_and_failures() -> None:
    tally = LiveTally()
    tally.record_answer({"predictions": [{"model_version": "v0001"}, {"model_version": "v0001"}]})
    tally.record_answer({"predictions": [{"model_version": "v0001"}, {"model_version": "v0002"}]})
    tally.record_answer({"predictions": []})
    tally.record_answer("not an object")
    tally.record_failure("503: model not ready")
    assert tally.calls == 5
    assert tally.failed == 3
    assert tally.scored == 4
    assert tally.runs == [("v0001", 2), (MIXED, 2)]
    assert tally.describe() == f"v0001 x 2 -> {MIXED} x 2; failed calls 3"
    assert len(tally.errors) == 3


class _Serving(BaseHTTPRequestHandler):
    """Answers with the version in ``server.version``; 503 while it is None."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        version = self.server.version  # type: ignore[attr-defined]
        self.server.calls += 1  # type: ignore[attr-defined]
        if version is None:
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"not ready")
            return
        answer = json.dumps({"predictions": [{"model_version": version} for _ in body["instances"]]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def serving() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Serving)
    server.version = "v0001"  # type: ignore[attr-defined]
    server.calls = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1/models/fraud:predict"


def _wait_for_calls(server: ThreadingHTTPServer, calls: int) -> None:
    deadline = time.monotonic() + 10
    while server.calls < calls:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the live traffic made no calls"
        time.sleep(0.01)


def test_a_swap_under_live_traffic_shows_as_one_switch(serving: ThreadingHTTPServer) -> None:
    slices = [[b'{"n":%d}' % i for i in range(start, start + 10)] for start in range(0, 50, 10)]
    # Paced far slower than the test: only hurry() lets it finish quickly.
    live = LiveTraffic(_url(serving), slices, batch=5, interval_s=30.0)
    assert live.calls_planned == 10
    live.start()
    _wait_for_calls(serving, 2)
    serving.version = "v0002"  # type: ignore[attr-defined]
    tally = live.finish()
    assert tally.failed == 0
    assert tally.scored == 50
    assert tally.runs == [("v0001", 10), ("v0002", 40)]
    assert live.slices_left == 0


def test_failed_calls_are_counted_not_raised(serving: ThreadingHTTPServer) -> None:
    serving.version = None  # type: ignore[attr-defined]
    live = LiveTraffic(_url(serving), [[b"{}"] * 4], batch=2, interval_s=0)
    live.start()
    tally = live.finish()
    assert (tally.calls, tally.failed, tally.scored) == (2, 2, 0)
    assert tally.errors == ["503: not ready", "503: not ready"]


def test_each_slice_waits_for_its_barrier_is_scored_then_handed_on_and_a_failure_surfaces(
    serving: ThreadingHTTPServer,
) -> None:
    log: list[tuple[str, int, int]] = []

    def seen() -> int:
        return int(serving.calls)  # type: ignore[attr-defined]

    live = LiveTraffic(
        _url(serving),
        [[b"{}"] * 3, [], [b"{}"] * 4],
        batch=3,
        interval_s=0,
        before_slice=lambda index: log.append(("before", index, seen())),
        after_slice=lambda index: log.append(("after", index, seen())),
    )
    live.start()
    assert live.finish().scored == 7
    # The barrier before a slice runs before its calls; the hand-on after them: no call scores a slice
    # that was handed on, and none starts before its barrier.
    assert log == [
        ("before", 0, 0),
        ("after", 0, 1),
        ("before", 1, 1),
        ("after", 1, 1),
        ("before", 2, 1),
        ("after", 2, 3),
    ]

    def broken(index: int) -> None:
        raise ConnectionError("Kafka is gone")

    failing = LiveTraffic(_url(serving), [[b"{}"] * 3] * 3, batch=3, interval_s=0, after_slice=broken)
    failing.start()
    with pytest.raises(ConnectionError, match="Kafka is gone"):
        failing.finish()
    assert failing.tally.calls == 1  # it stopped at the first failure


def test_pace_changes_the_interval_while_it_runs(serving: ThreadingHTTPServer) -> None:
    live = LiveTraffic(_url(serving), [[b"{}"]] * 4, batch=1, interval_s=600.0)
    live.start()
    _wait_for_calls(serving, 1)
    live.pace(0.2)  # the 600 s wait in progress becomes 0.2 s from its slice's start
    _wait_for_calls(serving, 4)  # within its 10 s, far below the 600 s pace
    assert live.finish().scored == 4
    with pytest.raises(ValueError, match="negative"):
        live.pace(-1)
