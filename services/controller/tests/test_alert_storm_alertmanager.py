"""The alert storm of the issue through the real Alertmanager: 500 alerts a model, 503s, a controller killed once.

Alertmanager (the Debian package's binary) receives 500 distinct firing alerts
for each of two models on its API, in paced batches, and delivers them to the
controller with the production route's grouping and ``credentials_file``.
Between the two a proxy answers the first webhook calls with 503 itself;
Alertmanager must retry them. The controller runs as a process that kills
itself once it has stored the first notification that reaches it, before
replying (``after_store``); the test restarts it on the same port and database
while Alertmanager keeps retrying. In the end every alert was decided exactly
once and each model has exactly one run whose pipeline ran once. The second half
of the storm is posted after both runs finished, so the cooldown (not only the
active run) is what holds it back.

Alertmanager's own notification counters are then checked against what the
proxy saw. They may differ in one way only, and the test says which: a
notification Alertmanager gives up at its deadline (``max(group_interval, 10s)``;
a loaded machine restarting the controller reaches it) can cut off the attempt
in flight. Alertmanager counts that attempt as failed, while the proxy either
never saw it, saw its request end early, or forwarded it and recorded the
controller's 200. Every such give-up is a failed notification whose error Alertmanager
logs as ``context deadline exceeded``, at most one attempt each.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
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

from tests.helpers import wait_for_progress
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = ("fraud", "churn")
STORM = 500
"""Distinct alerts per model."""
BATCHES = 20
"""Posts to Alertmanager's API (each a slice of every model's alerts): half before the runs finish, half after."""
BATCH_INTERVAL_S = 0.5
FAIL_FIRST = 4
"""Webhook calls the proxy answers with 503 before it forwards any."""
CUT_SHORT = 499
"""What the proxy records for a call whose request ended before its body did (the sender gave up): not forwarded."""
TOKEN = "a-token-from-a-file-0123456789"


class FaultyProxy:
    """Answers the first ``fail_first`` POSTs with 503 itself, then forwards each to ``upstream``.

    A forward the controller does not answer (it is down, or died mid-request) gets 502; a request whose
    body ends early is recorded as ``CUT_SHORT`` and not forwarded. ``answers`` holds ``(call number,
    status)`` for every call, in the order the calls came; ``in_flight`` counts calls not answered yet.
    """

    def __init__(self, upstream: str, fail_first: int) -> None:
        self.upstream = upstream
        self.fail_first = fail_first
        self._calls = 0
        self._refused = 0
        self._in_flight = 0
        self._answers: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=30)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                call = proxy._arrived()
                status = CUT_SHORT
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length)
                    if len(body) < length:
                        return  # Alertmanager gave up while sending; its connection is gone
                    status, reply = proxy._answer(self.path, self.headers, body)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the sender hung up before the answer (its deadline); the call stays recorded
                finally:
                    proxy._answered(call, status)

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

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def _arrived(self) -> int:
        with self._lock:
            self._calls += 1
            self._in_flight += 1
            return self._calls

    def _answered(self, call: int, status: int) -> None:
        with self._lock:
            self._answers.append((call, status))
            self._in_flight -= 1

    def _answer(self, path: str, headers: Message, body: bytes) -> tuple[int, bytes]:
        with self._lock:
            refuse = self._refused < self.fail_first
            self._refused += refuse
        if refuse:
            return 503, b'{"error": "unavailable", "detail": "injected by the test proxy"}'
        forwarded = {name: headers[name] for name in ("Authorization", "Content-Type") if name in headers}
        try:
            response = self._client.post(f"{self.upstream}{path}", content=body, headers=forwarded)
        except httpx.TransportError as error:
            return 502, json.dumps({"error": "bad_gateway", "detail": repr(error)}).encode()
        return response.status_code, response.content

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


def post_batches(
    alertmanager: str, alerts: list[list[dict[str, Any]]], stop: threading.Event, posted: list[int]
) -> None:
    """Every model's ``alerts`` in ``BATCHES // 2`` posts (each holding a slice of every model's), paced;
    each post's size is appended to ``posted``."""
    batches = BATCHES // 2
    with httpx.Client(timeout=30) as client:
        for index in range(batches):
            batch = [alert for per_model in alerts for alert in per_model[index::batches]]
            response = client.post(f"{alertmanager}/api/v2/alerts", json=batch)
            assert response.status_code == 200, response.text
            posted.append(len(batch))
            if stop.wait(BATCH_INTERVAL_S):  # pacing the storm, not waiting for a condition
                return


def webhook_counters(url: str) -> dict[str, int]:
    """Alertmanager's counters of the webhook integration, from one scrape (so they belong together)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    counters: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("integration") == "webhook":
                counters[sample.name] = counters.get(sample.name, 0) + int(sample.value)
    return counters


@dataclass(frozen=True)
class NotificationAccounts:
    """Alertmanager's webhook counters, its log of failed notifications and the proxy's calls, read together."""

    attempts: int
    """``alertmanager_notification_requests_total``: every request Alertmanager made (counted when it ended)."""
    failed_attempts: int
    """``alertmanager_notification_requests_failed_total``."""
    notifications: int
    """``alertmanager_notifications_total``: notifications begun (each ends at its first sent attempt or fails)."""
    failed_notifications: int
    """``alertmanager_notifications_failed_total``: notifications given up."""
    logged_failures: int
    """``Notify for alerts failed`` lines in Alertmanager's log: one per notification given up."""
    deadline_failures: int
    """Of those, the ones whose last error was ``context deadline exceeded``: given up with an attempt cut off."""
    proxied: tuple[int, ...]
    """The status the proxy recorded for each call, in call order."""
    proxy_in_flight: int

    @property
    def sent(self) -> int:
        """Attempts Alertmanager counted as delivered."""
        return self.attempts - self.failed_attempts

    @property
    def notifications_in_flight(self) -> int:
        """Notifications begun that have neither been sent (one sent attempt each) nor given up."""
        return self.notifications - self.failed_notifications - self.sent

    @property
    def settled(self) -> bool:
        """Nothing in flight on either side and every give-up logged: the numbers belong together."""
        return (
            self.notifications_in_flight == 0
            and self.proxy_in_flight == 0
            and self.logged_failures == self.failed_notifications
        )

    @property
    def cut_off(self) -> int:
        """Attempts whose outcome Alertmanager and the proxy saw differently, or that the proxy saw end early.

        Alertmanager counted more attempts than reached the proxy, counted as failed some that the proxy
        answered 200, or sent a request the proxy saw end before its body did.
        """
        reached = len(self.proxied)
        answered_200 = self.proxied.count(200)
        return (self.attempts - reached) + (answered_200 - self.sent) + self.proxied.count(CUT_SHORT)


def notification_accounts(alertmanager: str, log: Path, proxy: FaultyProxy) -> NotificationAccounts | None:
    """One consistent reading, or None when a call reached or left the proxy meanwhile (read again)."""
    before = (proxy.answers, proxy.in_flight)
    counters = webhook_counters(alertmanager)
    lines = log.read_text(errors="replace").splitlines()
    given_up = [line for line in lines if 'msg="Notify for alerts failed"' in line]
    accounts = NotificationAccounts(
        attempts=counters.get("alertmanager_notification_requests_total", 0),
        failed_attempts=counters.get("alertmanager_notification_requests_failed_total", 0),
        notifications=counters.get("alertmanager_notifications_total", 0),
        failed_notifications=counters.get("alertmanager_notifications_failed_total", 0),
        logged_failures=len(given_up),
        deadline_failures=sum(1 for line in given_up if "context deadline exceeded" in line),
        proxied=tuple(status for _, status in before[0]),
        proxy_in_flight=before[1],
    )
    return accounts if (proxy.answers, proxy.in_flight) == before else None


@pytest.mark.timeout(900)  # bounds a hang only: every wait below follows progress
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
    posted: list[int] = []
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(1) as pool:

        def triggers(model: str) -> list[dict[str, Any]]:
            response = client.get(f"{api}/triggers", params={"model": model, "limit": 1000})
            response.raise_for_status()
            return list(response.json())

        def all_runs() -> list[dict[str, Any]]:
            try:
                return list(client.get(f"{api}/runs", params={"limit": 1000}).json())
            except httpx.TransportError:
                return []  # the controller is down or restarting

        def finished_runs() -> list[dict[str, Any]]:
            runs = all_runs()
            return runs if all(run["status"] in ("succeeded", "failed") for run in runs) else []

        def progress() -> object:
            """What moves while the storm goes on: posts, the proxy's calls, runs and their states."""
            return len(posted), proxy.answers, [(run["id"], run["status"]) for run in all_runs()]

        storm: Future[None] = pool.submit(post_batches, alertmanager, first_half, stop, posted)

        def crashed() -> bool:
            if storm.done():
                storm.result()  # a failed post fails the test now
            return not controller.alive()

        try:
            # The proxy's 503s come first; the first notification that reaches the controller kills it.
            wait_for_progress(crashed, progress, "the controller to die between storing and replying")
            assert controller.process is not None
            assert controller.process.returncode == -9, controller.log_tail()
            controller.start(FAULT_KILL_POINT="none")  # same port, same database; Alertmanager is retrying
            controller.wait_ready(timeout_s=300)  # bounds a hang: a loaded machine takes tens of seconds
            wait_for_progress(storm.done, progress, "the first half of the storm to be posted")
            storm.result()
            wait_for_progress(
                lambda: {run["model"] for run in finished_runs()} == set(MODELS), progress, "the runs to finish"
            )
            post_batches(alertmanager, second_half, stop, posted)
        finally:
            stop.set()

        def decided() -> list[int]:
            return [len(triggers(model)) for model in MODELS]

        wait_for_progress(
            lambda: min(decided()) >= STORM and finished_runs() != [],
            lambda: (decided(), proxy.answers),
            "every alert to reach the controller and every run to finish",
        )
        runs = finished_runs()
        by_model = {model: triggers(model) for model in MODELS}

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
    statuses = [status for _, status in proxy.answers if status != CUT_SHORT]
    assert statuses[:FAIL_FIRST] == [503] * FAIL_FIRST
    assert 502 in statuses
    assert 200 in statuses[statuses.index(502) :]
    assert set(statuses) <= {200, 502, 503}, statuses

    # Alertmanager's counters against the proxy's calls, once neither has anything in flight.
    readings: list[NotificationAccounts] = []

    def settled() -> bool:
        reading = notification_accounts(alertmanager, tmp_path / "alertmanager.log", proxy)
        if reading is not None:
            readings.append(reading)
        return reading is not None and reading.settled

    wait_for_progress(
        settled, lambda: (proxy.answers, readings[-1:]), "Alertmanager and the proxy to have nothing in flight"
    )
    accounts = readings[-1]
    # Every call the proxy saw, Alertmanager counted; every attempt it counted as sent, the proxy answered 200.
    assert len(accounts.proxied) <= accounts.attempts, accounts
    assert accounts.sent <= accounts.proxied.count(200), accounts
    # Any other difference is an attempt cut off by a notification given up at its deadline: one at most each.
    assert accounts.cut_off <= accounts.deadline_failures <= accounts.failed_notifications, accounts
    assert controller.stop(timeout_s=120) == 0, controller.log_tail()
