"""The controller's store on SQLite and on a real PostgreSQL: keys once, one active run, history in order.

The same tests run against both databases; the PostgreSQL server is a throwaway
one for the session (``tests.servers.running_postgres``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from services.controller.tests.helpers import FakeLauncher, alert, build_controller, webhook
from sqlalchemy import create_engine, text

from berg.contracts.alerts import AlertmanagerWebhookV4
from berg_controller.policy import ModelState, Trigger, Verdict
from berg_controller.schema import metadata
from berg_controller.store import AlertKey, ControllerStore, StoreUnavailable
from tests.helpers import free_port
from tests.servers import PostgresServer, running_postgres

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
ALERT = Trigger(source="alert", model="fraud", reason="firing alert FeatureDriftHigh", alertname="FeatureDriftHigh")


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'controller.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.sqlalchemy_url(server.create_database("controller"))


@pytest.fixture
def store(database_url: str) -> Iterator[ControllerStore]:
    opened = ControllerStore.open(database_url, timeout_s=2)
    yield opened
    opened.close()


def test_an_alert_key_is_stored_once(store: ControllerStore) -> None:
    key = AlertKey("fraud", "a1b2c3d4e5f60718", T0, "firing")
    with store.write() as tx:
        assert tx.add_alert_key(key, T0)
        assert not tx.add_alert_key(key, T0)
    with store.write() as tx:
        assert not tx.add_alert_key(key, T0 + timedelta(hours=1))
        assert tx.add_alert_key(AlertKey("fraud", key.fingerprint, T0, "resolved"), T0)
        assert tx.add_alert_key(AlertKey("fraud", key.fingerprint, T0 + timedelta(seconds=1), "firing"), T0)
        assert tx.add_alert_key(AlertKey("", key.fingerprint, T0, "firing"), T0)


def test_a_failed_transaction_stores_nothing(store: ControllerStore) -> None:
    key = AlertKey("fraud", "f", T0, "firing")

    def store_then_fail() -> None:
        with store.write() as tx:
            tx.add_alert_key(key, T0)
            tx.create_run("run-1", "local", ALERT, T0)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        store_then_fail()
    with store.write() as tx:
        assert tx.add_alert_key(key, T0)
    assert store.runs(10) == []


def test_one_active_run_per_model_is_a_database_constraint(store: ControllerStore) -> None:
    with store.write() as tx:
        run = tx.create_run("run-1", "local", ALERT, T0)
    assert run.active
    assert run.status == "pending"
    with pytest.raises(StoreUnavailable, match="concurrent write conflicted"), store.write() as tx:
        tx.create_run("run-2", "local", ALERT, T0)
    with store.write() as tx:
        assert tx.model_state("fraud") == ModelState(active_run="run-1", last_started_at=T0)
        assert tx.model_state("churn") == ModelState()
        tx.create_run("run-3", "local", Trigger(source="manual", model="churn", reason="manual"), T0)
    assert store.finish_run("run-1", "succeeded", T0 + timedelta(minutes=5), exit_code=0, detail="done")
    assert not store.finish_run("run-1", "failed", T0 + timedelta(minutes=6), exit_code=1, detail="again")
    with store.write() as tx:
        assert tx.model_state("fraud") == ModelState(active_run=None, last_started_at=T0)
        tx.create_run("run-2", "local", ALERT, T0 + timedelta(minutes=7))
    assert [run.id for run in store.active_runs()] == ["run-3", "run-2"]


def test_run_lifecycle(store: ControllerStore) -> None:
    with store.write() as tx:
        tx.create_run("run-1", "local", ALERT, T0)
    assert store.mark_running("run-1", "4242", "python pipeline.py", T0 + timedelta(seconds=1))
    assert not store.mark_running("run-1", "4343", "again", T0)
    assert store.mark_pending("run-1", "the wrapper never said go")
    pending = store.run("run-1")
    assert pending is not None
    assert pending.status == "pending"
    assert pending.external_id is None
    assert store.mark_running("run-1", "4343", "python pipeline.py", T0 + timedelta(seconds=2))
    assert store.finish_run("run-1", "failed", T0 + timedelta(minutes=1), exit_code=3, detail="exit 3")
    store.set_result("run-1", "v0002", promoted=False)
    run = store.run("run-1")
    assert run is not None
    assert (run.status, run.external_id, run.exit_code, run.detail) == ("failed", "4343", 3, "exit 3")
    assert (run.result_version, run.promoted, run.command) == ("v0002", False, "python pipeline.py")
    # Timestamps come back aware, in UTC, to the microsecond.
    assert run.created_at == T0
    assert run.created_at.tzinfo == UTC
    assert run.finished_at == T0 + timedelta(minutes=1)
    assert store.run("nope") is None


def test_history_is_newest_first_with_a_limit(store: ControllerStore) -> None:
    with store.write() as tx:
        for minute in range(5):
            now = T0 + timedelta(minutes=minute)
            trigger = Trigger(source="alert", model="fraud" if minute % 2 else "churn", reason=f"r{minute}")
            tx.add_trigger(now, trigger, Verdict("ignored", f"because {minute}"), None)
    latest = store.triggers(3)
    assert [t.reason for t in latest] == ["because 4", "because 3", "because 2"]
    assert [t.reason for t in store.triggers(10, model="fraud")] == ["because 3", "because 1"]
    with store.write() as tx:
        tx.create_run("a", "local", ALERT, T0)
    store.finish_run("a", "succeeded", T0, exit_code=0, detail="")
    with store.write() as tx:
        tx.create_run("b", "local", ALERT, T0 + timedelta(hours=1))
    assert [run.id for run in store.runs(10)] == ["b", "a"]
    assert [run.id for run in store.runs(1)] == ["b"]
    assert store.runs(10, model="churn") == []


def test_long_values_are_cut_to_their_columns(store: ControllerStore) -> None:
    with store.write() as tx:
        tx.add_trigger(T0, Trigger(source="alert", model="m" * 500, reason="r"), Verdict("ignored", "x" * 900), None)
    (trigger,) = store.triggers(1)
    assert len(trigger.model) == 200
    assert len(trigger.reason) == 500


def test_many_threads_one_run(store: ControllerStore, tmp_path: Path) -> None:
    """The controller over this store: 200 alerts from 8 threads start exactly one run."""
    launcher = FakeLauncher()
    controller = build_controller(store, launcher, tmp_path / "registry")

    def send(index: int) -> None:
        payload = AlertmanagerWebhookV4.model_validate(webhook(alert(starts_at=T0 + timedelta(seconds=index))))
        controller.receive(payload)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(200)))
    assert len(launcher.started) == 1
    assert len(store.runs(10)) == 1
    decisions = [t.decision for t in store.triggers(1000)]
    assert decisions.count("started") == 1
    assert decisions.count("active_run") == 199


def test_two_replicas_one_run(database_url: str, tmp_path: Path) -> None:
    """Two controllers on one database (two engines) racing on one model: the constraint keeps it to one run."""
    stores = [ControllerStore.open(database_url, timeout_s=5) for _ in range(2)]
    launchers = [FakeLauncher(), FakeLauncher()]
    controllers = [
        build_controller(s, launcher, tmp_path / "registry") for s, launcher in zip(stores, launchers, strict=True)
    ]
    barrier = threading.Barrier(2)

    def storm(which: int) -> None:
        barrier.wait()
        for index in range(40):
            payload = AlertmanagerWebhookV4.model_validate(
                webhook(alert(fingerprint=f"{index:016x}", starts_at=T0 + timedelta(seconds=index)))
            )
            for _ in range(50):  # Alertmanager's retries of a 503
                try:
                    controllers[which].receive(payload)
                    break
                except StoreUnavailable:
                    continue

    try:
        threads = [threading.Thread(target=storm, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(launchers[0].started) + len(launchers[1].started) == 1
        assert len(stores[0].runs(10)) == 1
    finally:
        for s in stores:
            s.close()


def test_an_unreachable_postgres_is_unavailable() -> None:
    url = f"postgresql+psycopg://berg:wrong@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(StoreUnavailable, match="unavailable"):
        ControllerStore.open(url, timeout_s=1)


def test_a_locked_sqlite_database_is_unavailable_for_writes_only(tmp_path: Path) -> None:
    path = tmp_path / "controller.db"
    store = ControllerStore.open(f"sqlite:///{path}", timeout_s=0.2)
    try:
        with store.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailable, match="database is locked"), store.write() as tx:
                tx.add_alert_key(AlertKey("fraud", "f", T0, "firing"), T0)
            assert store.runs(10) == []  # readers are not blocked (WAL)
            store.ping()
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        with store.write() as tx:
            assert tx.add_alert_key(AlertKey("fraud", "f", T0, "firing"), T0)
    finally:
        store.close()


def test_unsupported_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        ControllerStore.open("mysql://u:p@db/controller")


def test_an_older_database_gains_the_failure_columns(database_url: str) -> None:
    """A database written by the release before runs said why they failed: opening it adds the columns."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True)
    engine = create_engine(database_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE runs DROP COLUMN failed_step"))
            connection.execute(text("ALTER TABLE runs DROP COLUMN error"))
            connection.execute(
                text(
                    "INSERT INTO runs (id, model, launcher, source, reason, status, active_model, created_at) "
                    "VALUES ('old-run', 'fraud', 'local', 'manual', 'before the upgrade', 'running', 'fraud', "
                    "'2026-01-01 00:00:00')"
                )
            )
    finally:
        engine.dispose()
    store = ControllerStore.open(database_url, timeout_s=2)
    try:
        (old,) = store.runs(10)
        assert (old.id, old.failed_step, old.error) == ("old-run", None, None)
        assert store.finish_run(
            "old-run", "failed", T0, exit_code=1, detail="the pipeline exited with 1", failed_step="train", error="E"
        )
        finished = store.run("old-run")
        assert finished is not None
        assert (finished.status, finished.failed_step, finished.error) == ("failed", "train", "E")
    finally:
        store.close()
    ControllerStore.open(database_url, timeout_s=2).close()  # a second start finds nothing to add
