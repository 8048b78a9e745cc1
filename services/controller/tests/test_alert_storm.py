"""Alert storms against the real app on uvicorn, its SQLite store and the local launcher (a fake pipeline).

Alertmanager sends every notification at least once: a storm of alerts for one
model, the same storm while the database is briefly unavailable (503s that
Alertmanager retries), two models at once and flapping alerts must each start
exactly the runs the policy allows, and each pipeline exactly once.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from services.controller.tests.helpers import (
    Delivery,
    InProcessController,
    alert,
    count_starts,
    deliver,
    kill_fake_pipelines,
    running_controller,
    settings_for,
    webhook,
)

from berg_controller.policy import DEFAULT_TRIGGER_ALERTS

pytestmark = pytest.mark.integration

STORM = 500
SENDERS = 8
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def starts(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "starts.txt"
    yield path
    kill_fake_pipelines(path)


def storm_payloads(count: int, models: tuple[str, ...] = ("fraud",), seed: int = 7) -> list[dict[str, Any]]:
    """``count`` notifications: new alerts of every trigger name, one in five a redelivery of an earlier one."""
    chosen = random.Random(seed)
    payloads: list[dict[str, Any]] = []
    for index in range(count):
        if payloads and chosen.random() < 0.2:
            payloads.append(chosen.choice(payloads))
            continue
        alerts = [
            alert(
                models[(index + offset) % len(models)],
                chosen.choice(DEFAULT_TRIGGER_ALERTS),
                starts_at=T0 + timedelta(seconds=index),
            )
            for offset in range(chosen.randint(1, 3))
        ]
        payloads.append(webhook(*alerts))
    return payloads


def send_all(controller: InProcessController, payloads: list[dict[str, Any]]) -> list[Delivery]:
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=SENDERS)) as client:

        def send(payload: dict[str, Any]) -> Delivery:
            return deliver(client, controller.url, payload)

        with ThreadPoolExecutor(SENDERS) as pool:
            return list(pool.map(send, payloads))


def test_a_storm_of_500_alerts_starts_one_run(tmp_path: Path, starts: Path) -> None:
    with running_controller(settings_for(tmp_path, sleep_s=2.0)) as controller:
        deliveries = send_all(controller, storm_payloads(STORM))
        assert all(d.response.status_code == 200 for d in deliveries)
        (run,) = controller.wait_finished()
        assert run["status"] == "succeeded"
        assert count_starts(starts) == 1
        decisions = [t["decision"] for t in controller.triggers(limit=1000)]
        assert decisions.count("started") == 1
        assert set(decisions) <= {"started", "active_run", "cooldown"}
        # Every distinct alert was decided once; redeliveries were recognised.
        assert sum(d.response.json()["duplicates"] for d in deliveries) > 0
        assert controller.metric("berg_controller_runs_total", {"model": "fraud", "status": "succeeded"}) == 1


def test_a_storm_through_503s_and_retries_starts_one_run(tmp_path: Path, starts: Path) -> None:
    """The database is locked until the first ten deliveries have failed with 503; Alertmanager retries them."""
    failures_wanted = 10
    settings = settings_for(tmp_path, sleep_s=2.0, database_timeout_s=0.1)
    with running_controller(settings) as controller:
        failures = 0
        enough_failures = threading.Event()
        counting = threading.Lock()
        locker = sqlite3.connect(
            tmp_path / "controller" / "controller.db", isolation_level=None, check_same_thread=False
        )
        locker.execute("BEGIN IMMEDIATE")

        def failed_once() -> None:
            nonlocal failures
            with counting:
                failures += 1
                if failures >= failures_wanted:
                    enough_failures.set()

        def unlock_after_failures() -> None:
            enough_failures.wait(timeout=300)  # bounds a hang: eight senders fail ten times within moments
            locker.execute("ROLLBACK")

        unlocker = threading.Thread(target=unlock_after_failures)
        unlocker.start()
        try:
            with httpx.Client(timeout=30) as client, ThreadPoolExecutor(SENDERS) as pool:
                deliveries = list(
                    pool.map(
                        lambda p: deliver(client, controller.url, p, on_failure=failed_once),
                        storm_payloads(STORM, seed=11),
                    )
                )
        finally:
            enough_failures.set()
            unlocker.join()
            locker.close()
        assert failures >= failures_wanted
        assert sum(d.failures for d in deliveries) == failures
        assert all(d.response.status_code == 200 for d in deliveries)
        (run,) = controller.wait_finished()
        assert run["status"] == "succeeded"
        assert count_starts(starts) == 1
        assert [t["decision"] for t in controller.triggers(limit=1000)].count("started") == 1


def test_two_models_two_runs(tmp_path: Path, starts: Path) -> None:
    settings = settings_for(tmp_path, sleep_s=2.0, models=["fraud", "churn"])
    with running_controller(settings) as controller:
        deliveries = send_all(controller, storm_payloads(200, models=("fraud", "churn")))
        assert all(d.response.status_code == 200 for d in deliveries)
        runs = controller.wait_finished()
        assert sorted(run["model"] for run in runs) == ["churn", "fraud"]
        assert count_starts(starts, "fraud") == 1
        assert count_starts(starts, "churn") == 1


def test_ten_flaps_start_at_most_one_run(tmp_path: Path, starts: Path) -> None:
    with running_controller(settings_for(tmp_path, sleep_s=0.0)) as controller:
        for flap in range(10):
            began = T0 + timedelta(minutes=flap)
            fingerprint = "00000000000f1a90"  # the same alert, firing and resolving
            firing = alert(fingerprint=fingerprint, starts_at=began)
            resolved = alert(fingerprint=fingerprint, starts_at=began, status="resolved")
            assert deliver(controller.client, controller.url, webhook(firing)).response.status_code == 200
            if flap == 0:
                assert len(controller.wait_finished()) == 1  # the next flaps come after the run: the cooldown
            assert deliver(controller.client, controller.url, webhook(resolved)).response.status_code == 200
        runs = controller.wait_finished()
        assert len(runs) <= 1
        assert count_starts(starts) == len(runs) == 1
        decisions = [t["decision"] for t in controller.triggers()]
        assert decisions.count("ignored") == 10  # the resolutions
        assert decisions.count("started") == 1
        assert decisions.count("cooldown") == 9
