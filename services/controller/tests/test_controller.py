"""The controller's logic over a real SQLite store with a fake launcher and a hand-moved clock.

Schedules, the data-volume check, run follow-up (success, failure, a start that
never happened, the timeout) and recovery of pending runs after a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from services.controller.tests.helpers import FakeLauncher, alert, build_controller, webhook

from berg.contracts.alerts import AlertmanagerWebhookV4
from berg_controller.controller import Controller, DataVolumeCheck
from berg_controller.cron import CronSchedule
from berg_controller.data_volume import PrometheusDataVolume
from berg_controller.launchers import LaunchError, LaunchUnavailable, Progress, RecordStarted
from berg_controller.store import ControllerStore, RunRecord

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ControllerStore]:
    opened = ControllerStore.open(f"sqlite:///{tmp_path / 'controller.db'}")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 1, 1, 2, 59, 0, tzinfo=UTC))


def controller_for(
    store: ControllerStore, tmp_path: Path, launcher: FakeLauncher, clock: Clock, **kwargs: object
) -> Controller:
    return build_controller(store, launcher, tmp_path / "registry", clock=clock, **kwargs)  # type: ignore[arg-type]


def receive(controller: Controller, *alerts: dict[str, object]) -> None:
    controller.receive(AlertmanagerWebhookV4.model_validate(webhook(*alerts)))


def test_a_schedule_fires_once_at_its_minute(store: ControllerStore, tmp_path: Path, clock: Clock) -> None:
    launcher = FakeLauncher()
    controller = controller_for(store, tmp_path, launcher, clock, schedules={"fraud": CronSchedule.parse("0 3 * * *")})
    clock.advance(seconds=59)  # 02:59:59
    controller.tick()
    assert launcher.started == []
    clock.advance(seconds=2)  # 03:00:01
    controller.tick()
    controller.tick()
    (run,) = store.runs(10)
    assert (run.source, run.status) == ("schedule", "running")
    assert run.reason == "schedule '0 3 * * *' at 2026-01-01T03:00:00+00:00"
    assert launcher.started == [run.id]


def test_a_scheduled_slot_during_a_cooldown_is_recorded_not_run(
    store: ControllerStore, tmp_path: Path, clock: Clock
) -> None:
    launcher = FakeLauncher()
    controller = controller_for(store, tmp_path, launcher, clock, schedules={"fraud": CronSchedule.parse("* * * * *")})
    receive(controller, alert())
    (first,) = store.runs(10)
    launcher.progress[first.id] = Progress("succeeded", "done", exit_code=0)
    clock.advance(minutes=1)
    controller.tick()
    assert [t.decision for t in store.triggers(10)] == ["cooldown", "started"]
    assert len(store.runs(10)) == 1


def test_the_data_volume_check(store: ControllerStore, tmp_path: Path, clock: Clock) -> None:
    counts = {"fraud": 40}

    class Source:
        asked = 0

        def new_labelled_rows(self, model: str) -> int | None:
            Source.asked += 1
            return counts.get(model)

    launcher = FakeLauncher()
    check = DataVolumeCheck(Source(), threshold=50, interval=timedelta(minutes=1))
    controller = controller_for(store, tmp_path, launcher, clock, data_volume=check)
    controller.tick()
    assert launcher.started == []
    assert store.triggers(10) == []
    counts["fraud"] = 60
    clock.advance(seconds=30)
    controller.tick()  # within the interval: not asked
    assert Source.asked == 1
    clock.advance(seconds=31)
    controller.tick()
    (run,) = store.runs(10)
    assert run.source == "data_volume"
    assert run.reason == "60 new labelled rows reached the threshold 50"


def test_prometheus_data_volume_source() -> None:
    def prometheus(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        if 'model="fraud"' in query:
            return httpx.Response(200, json={"data": {"result": [{"metric": {}, "value": [1, "1234"]}]}})
        if 'model="down"' in query:
            return httpx.Response(503, text="unavailable")
        return httpx.Response(200, json={"data": {"result": []}})

    source = PrometheusDataVolume("http://prometheus:9090", 5, transport=httpx.MockTransport(prometheus))
    assert source.new_labelled_rows("fraud") == 1234
    assert source.new_labelled_rows("churn") is None
    assert source.new_labelled_rows("down") is None
    source.close()


def test_finished_runs_are_recorded_and_counted(store: ControllerStore, tmp_path: Path, clock: Clock) -> None:
    launcher = FakeLauncher()
    controller = controller_for(store, tmp_path, launcher, clock, models=("fraud", "churn"))
    receive(controller, alert(model="fraud"), alert(model="churn"))
    fraud, churn = sorted(store.runs(10), key=lambda r: r.model, reverse=True)
    launcher.progress[fraud.id] = Progress("succeeded", "exit 0", exit_code=0)
    launcher.progress[churn.id] = Progress("failed", "exit 2", exit_code=2)
    clock.advance(minutes=5)
    controller.tick()
    finished = {run.model: run for run in store.runs(10)}
    assert (finished["fraud"].status, finished["fraud"].exit_code) == ("succeeded", 0)
    assert (finished["churn"].status, finished["churn"].detail) == ("failed", "exit 2")
    assert finished["fraud"].finished_at == clock.now
    assert store.active_runs() == []


def test_a_run_that_never_started_is_started_again(store: ControllerStore, tmp_path: Path, clock: Clock) -> None:
    launcher = FakeLauncher()
    controller = controller_for(store, tmp_path, launcher, clock)
    receive(controller, alert())
    (run,) = store.runs(10)
    launcher.progress[run.id] = Progress("not_started", "the controller never said go")
    controller.tick()
    launcher.progress.pop(run.id)
    assert launcher.started == [run.id, run.id]
    again = store.run(run.id)
    assert again is not None
    assert again.status == "running"


def test_the_run_timeout_stops_a_run(store: ControllerStore, tmp_path: Path, clock: Clock) -> None:
    launcher = FakeLauncher()
    controller = controller_for(store, tmp_path, launcher, clock, run_timeout=timedelta(hours=1))
    receive(controller, alert())
    (run,) = store.runs(10)
    clock.advance(minutes=59)
    controller.tick()
    assert launcher.stopped == []
    clock.advance(minutes=2)
    controller.tick()
    assert launcher.stopped == [run.id]
    stopped = store.run(run.id)
    assert stopped is not None
    assert stopped.status == "failed"
    assert "run timeout" in (stopped.detail or "")


class Refusing(FakeLauncher):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def start(self, run: RunRecord, record_started: RecordStarted) -> str:
        raise self.error


def test_a_launch_error_fails_the_run(store: ControllerStore, tmp_path: Path, clock: Clock) -> None:
    controller = controller_for(store, tmp_path, Refusing(LaunchError("bad package")), clock)
    receive(controller, alert())
    (run,) = store.runs(10)
    assert (run.status, run.detail) == ("failed", "bad package")


def test_pending_runs_are_started_by_the_next_round(store: ControllerStore, tmp_path: Path, clock: Clock) -> None:
    """The launcher was unavailable (or the controller died after storing the run): the loop starts it, once."""
    controller = controller_for(store, tmp_path, Refusing(LaunchUnavailable("kfp down")), clock)
    receive(controller, alert())
    (run,) = store.runs(10)
    assert run.status == "pending"
    # The next controller (after a restart) with a working launcher.
    launcher = FakeLauncher()
    restarted = controller_for(store, tmp_path, launcher, clock)
    restarted.tick()
    restarted.tick()
    assert launcher.started == [run.id]
    # The redelivered notification finds its alert stored and starts nothing more.
    assert len(store.runs(10)) == 1
