"""The alert storm of the issue through the real Alertmanager: 500 alerts a model, 503s, a controller killed once.

Alertmanager (the Debian package's binary) receives 500 distinct firing alerts
for each of two models on its API, in batches over a few seconds (well under the
storm's budget of 60 s), and delivers them to the controller with the production
route's grouping and ``credentials_file``. Between the two a proxy answers the
first webhook calls with 503 itself; Alertmanager must retry them. The
controller runs as a process that kills itself once it has stored the first
notification that reaches it, before replying (``after_store``); the test
restarts it on the same port and database while Alertmanager keeps retrying.
In the end every alert was decided exactly once and each model has exactly one
run whose pipeline ran once. The second half of the storm is posted after both
runs finished, so the cooldown (not only the active run) is what holds it back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from services.controller.tests.helpers import (
    controller_process,
    count_starts,
    running_alertmanager,
)

from tests.helpers import wait_for
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = ("fraud", "churn")
STORM = 500
"""Distinct alerts per model."""
BATCHES = 20
"""Posts to Alertmanager's API (each a slice of every model's alerts): half before the runs finish, half after."""
BATCH_INTERVAL_S = 0.5
STORM_BUDGET_S = 60.0
FAIL_FIRST = 4
"""Webhook calls the proxy answers with 503 before it forwards any."""
TOKEN = "a-token-from-a-file-0123456789"


class FaultyProxy:
    """Answers the first ``fail_first`` POSTs with 503 itself, then forwards each to ``upstream``.

    A forward the controller does not answer (it is down, or died mid-request) gets 502. ``answers`` holds
    ``(call number, status answered)`` for every call, in the order the calls came.
    """

    def __init__(self, upstream: str, fail_first: int) -> None:
        self.upstream = upstream
        self.fail_first = fail_first
        self._calls = 0
        self._answers: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=30)
        answer = self._answer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, reply = answer(self.path, self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def answers(self) -> list[tuple[int, int]]:
        with self._lock:
            return sorted(self._answers)

    def _answer(self, path: str, headers: Message, body: bytes) -> tuple[int, bytes]:
        with self._lock:
            self._calls += 1
            call = self._calls
        if call <= self.fail_first:
            status, reply = 503, b'{"error": "unavailable", "detail": "injected by the test proxy"}'
        else:
            forwarded = {name: headers[name] for name in ("Authorization", "Content-Type") if name in headers}
            try:
                response = self._client.post(f"{self.upstream}{path}", content=body, headers=forwarded)
                status, reply = response.status_code, response.content
            except httpx.TransportError as error:
                status, reply = 502, json.dumps({"error": "bad_gateway", "detail": repr(error)}).encode()
        with self._lock:
            self._answers.append((call, status))
        return status, reply

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._client.close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook-token"
    path.write_text(f"{TOKEN}\n")
    return path


@pytest.fixture
def controller(tmp_path: Path, token_file: Path) -> Iterator[ServiceProcess]:
    """The controller as a process (not started yet): both models, the fake pipeline, a long cooldown."""
    with controller_process(
        tmp_path, sleep_s=0.5, WEBHOOK_TOKEN_FILE=str(token_file), MODELS=json.dumps(MODELS)
    ) as process:
        yield process


@pytest.fixture
def proxy(controller: ServiceProcess) -> Iterator[FaultyProxy]:
    with FaultyProxy(f"http://127.0.0.1:{controller.port}", FAIL_FIRST) as running:
        yield running


@pytest.fixture
def alertmanager(tmp_path: Path, proxy: FaultyProxy, token_file: Path) -> Iterator[str]:
    with running_alertmanager(tmp_path, f"{proxy.url}/alerts", token_file, group_wait="1s", group_interval="1s") as url:
        yield url


def storm_alerts(model: str, starts_at: datetime) -> list[dict[str, Any]]:
    """``STORM`` distinct firing alerts for ``model``, as Prometheus posts them (one feature, one instance each)."""
    return [
        {
            "labels": {
                "alertname": "FeatureDriftHigh",
                "model": model,
                "severity": "warning",
                "feature": f"feature_{index:03d}",
                "instance": f"monitoring-{index:03d}:9108",
            },
            "annotations": {"summary": f"PSI of feature_{index:03d} above 0.2"},
            "startsAt": starts_at.isoformat(),
            "generatorURL": "http://prometheus:9090/graph",
        }
        for index in range(STORM)
    ]


def post_batches(alertmanager: str, alerts: list[list[dict[str, Any]]], stop: threading.Event) -> None:
    """Every model's ``alerts`` in ``BATCHES // 2`` posts (each holding a slice of every model's), paced."""
    batches = BATCHES // 2
    with httpx.Client(timeout=10) as client:
        for index in range(batches):
            batch = [alert for per_model in alerts for alert in per_model[index::batches]]
            response = client.post(f"{alertmanager}/api/v2/alerts", json=batch)
            assert response.status_code == 200, response.text
            if stop.wait(BATCH_INTERVAL_S):  # pacing the storm, not waiting for a condition
                return


def metric(url: str, name: str, labels: Mapping[str, str]) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.mark.timeout(120)
def test_a_storm_through_alertmanager_503s_and_a_crash_starts_one_run_per_model(
    controller: ServiceProcess, proxy: FaultyProxy, alertmanager: str, tmp_path: Path
) -> None:
    starts = tmp_path / "starts.txt"
    api = f"http://127.0.0.1:{controller.port}"
    alerts = [storm_alerts(model, datetime.now(UTC) - timedelta(minutes=1)) for model in MODELS]
    first_half = [per_model[: STORM // 2] for per_model in alerts]
    second_half = [per_model[STORM // 2 :] for per_model in alerts]
    controller.start(FAULT_KILL_POINT="after_store")
    controller.wait_ready()
    stop = threading.Event()
    storm_began = time.monotonic()
    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(1) as pool:

        def triggers(model: str) -> list[dict[str, Any]]:
            response = client.get(f"{api}/triggers", params={"model": model, "limit": 1000})
            response.raise_for_status()
            return list(response.json())

        def finished_runs() -> list[dict[str, Any]]:
            runs = client.get(f"{api}/runs", params={"limit": 1000}).json()
            return list(runs) if all(run["status"] in ("succeeded", "failed") for run in runs) else []

        storm: Future[None] = pool.submit(post_batches, alertmanager, first_half, stop)

        def crashed() -> bool:
            if storm.done():
                storm.result()  # a failed post fails the test now
            return not controller.alive()

        try:
            # The proxy's 503s come first; the first notification that reaches the controller kills it.
            wait_for(crashed, 60, "the controller to die between storing and replying")
            assert controller.process is not None
            assert controller.process.returncode == -9, controller.log_tail()
            controller.start(FAULT_KILL_POINT="none")  # same port, same database; Alertmanager is retrying
            controller.wait_ready()
            storm.result(timeout=STORM_BUDGET_S)
            wait_for(lambda: {run["model"] for run in finished_runs()} == set(MODELS), 60, "the runs to finish")
            post_batches(alertmanager, second_half, stop)
        finally:
            stop.set()
        storm_took = time.monotonic() - storm_began
        wait_for(
            lambda: all(len(triggers(model)) >= STORM for model in MODELS) and finished_runs() != [],
            60,
            "every alert to reach the controller and every run to finish",
        )
        runs = finished_runs()
        by_model = {model: triggers(model) for model in MODELS}

    assert storm_took < STORM_BUDGET_S
    assert controller.alive(), controller.log_tail()
    assert controller.starts == 2  # killed once, restarted once
    for model in MODELS:
        of_model = [(run["source"], run["status"]) for run in runs if run["model"] == model]
        assert of_model == [("alert", "succeeded")], f"{model}: {len(of_model)} runs {of_model}, not exactly one"
        assert count_starts(starts, model) == 1
        decisions = [trigger["decision"] for trigger in by_model[model]]
        assert len(decisions) == STORM, f"{model}: {len(decisions)} alerts decided, not each of {STORM} once"
        assert decisions.count("started") == 1
        assert set(decisions) <= {"started", "active_run", "cooldown"}
        assert "cooldown" in decisions  # the second half came after the run finished
    assert len(runs) == len(MODELS), runs  # and no run of anything else

    # The proxy answered the first calls 503 itself; the controller's death was a 502; later deliveries got 200.
    statuses = [status for _, status in proxy.answers]
    assert statuses[:FAIL_FIRST] == [503] * FAIL_FIRST
    assert 502 in statuses
    assert 200 in statuses[statuses.index(502) :]
    assert set(statuses) <= {200, 502, 503}, statuses

    # Alertmanager made exactly these calls: it retried every one that failed.
    def alertmanager_counted() -> bool:
        labels = {"integration": "webhook"}
        answers = [status for _, status in proxy.answers]
        failed = sum(1 for status in answers if status != 200)
        return (
            metric(alertmanager, "alertmanager_notification_requests_total", labels) == len(answers)
            and metric(alertmanager, "alertmanager_notification_requests_failed_total", labels) == failed
        )

    wait_for(alertmanager_counted, 10, "Alertmanager's request counts to match the proxy's")
    assert controller.stop(timeout_s=30) == 0, controller.log_tail()
