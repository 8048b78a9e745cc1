"""The controller's history on SQLAlchemy: alert keys, triggers and runs (SQLite embedded, PostgreSQL on a cluster).

Every database error that a retry can cure (a lock held too long, the server
gone, the pool exhausted, a concurrent writer that took a model's active-run slot
first) leaves this module as :class:`StoreUnavailable`, which
the webhook answers with 503 so Alertmanager delivers again. Writes are
serialized in this process and, on SQLite, open with ``BEGIN IMMEDIATE`` so two
writers never deadlock on a lock upgrade; reads never wait for writers (WAL).

Example:
    >>> store = ControllerStore.open("sqlite:///.berg/controller/controller.db", timeout_s=5)
    >>> with store.write() as tx:
    ...     if tx.add_alert_key(key, now):
    ...         run = tx.create_run("20260101-030000-ab12cd34", "my-model", "local", trigger, now)
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from berg.contracts.run_failure import MAX_ERROR_BYTES, MAX_STEP
from berg_controller.policy import ModelState, Trigger, Verdict
from berg_controller.private_files import FILE_MODE, make_private_dirs, restrict_to_owner
from berg_controller.schema import ACTIVE_STATUSES, RunStatus, alert_keys, metadata, runs, triggers

__all__ = ["AlertKey", "ControllerStore", "RunRecord", "StoreTransaction", "StoreUnavailable", "TriggerRecord"]


class StoreUnavailable(Exception):
    """The database cannot be used right now (locked, down, no free connection); a retry may succeed."""


@dataclass(frozen=True)
class AlertKey:
    """One occurrence of an alert: its model (``""`` if unmanaged), fingerprint, start and status."""

    model: str
    fingerprint: str
    starts_at: datetime
    status: str


@dataclass(frozen=True)
class RunRecord:
    """One pipeline run as recorded."""

    id: str
    model: str
    launcher: str
    source: str
    reason: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    external_id: str | None = None
    """The local wrapper's pid, or the Kubeflow run id."""
    command: str | None = None
    """What was started: the local command line, or the Kubeflow pipeline and host."""
    exit_code: int | None = None
    detail: str | None = None
    """Why it failed, or how it ended."""
    result_version: str | None = None
    """The registry version the run registered, when known."""
    promoted: bool | None = None
    """Whether that version went to production."""
    failed_step: str | None = None
    """The pipeline step that failed (a failed run whose command or Kubeflow named it)."""
    error: str | None = None
    """The head of a failed run's error (bounded, secrets masked: see ``berg.contracts.run_failure``)."""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class TriggerRecord:
    """One trigger and what the policy decided."""

    id: int
    created_at: datetime
    source: str
    model: str
    alertname: str
    decision: str
    reason: str
    run_id: str | None


_TRANSIENT = (OperationalError, InterfaceError, PoolTimeoutError)


@contextlib.contextmanager
def _transient_errors() -> Iterator[None]:
    try:
        yield
    except _TRANSIENT as error:
        raise StoreUnavailable(f"the controller database is unavailable: {error}") from error
    except IntegrityError as error:
        # A concurrent writer (another replica) took the model's active-run slot first: asking again
        # sees its run and decides accordingly.
        raise StoreUnavailable(f"a concurrent write conflicted: {error.orig}") from error
    except DBAPIError as error:
        if error.connection_invalidated:
            raise StoreUnavailable(f"the controller database connection was lost: {error}") from error
        raise


def _run(row: Any) -> RunRecord:
    return RunRecord(
        id=row.id,
        model=row.model,
        launcher=row.launcher,
        source=row.source,
        reason=row.reason,
        status=row.status,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        external_id=row.external_id,
        command=row.command,
        exit_code=row.exit_code,
        detail=row.detail,
        result_version=row.result_version,
        promoted=row.promoted,
        failed_step=row.failed_step,
        error=row.error,
    )


def _trigger(row: Any) -> TriggerRecord:
    return TriggerRecord(
        id=row.id,
        created_at=row.created_at,
        source=row.source,
        model=row.model,
        alertname=row.alertname,
        decision=row.decision,
        reason=row.reason,
        run_id=row.run_id,
    )


class StoreTransaction:
    """The writes of one webhook or trigger, committed together (or not at all)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add_alert_key(self, key: AlertKey, received_at: datetime) -> bool:
        """Record ``key``; False when it was there already (a redelivery)."""
        values = {
            "model": key.model,
            "fingerprint": key.fingerprint,
            "starts_at": key.starts_at,
            "status": key.status,
            "received_at": received_at,
        }
        dialect = postgresql if self._connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(alert_keys).values(values).on_conflict_do_nothing().returning(alert_keys.c.id)
        # A row comes back only when the key was new (rowcount is not reliable with RETURNING).
        return self._connection.execute(statement).first() is not None

    def model_state(self, model: str) -> ModelState:
        """The model's active run and the start of its latest run."""
        active = self._connection.execute(select(runs.c.id).where(runs.c.active_model == model)).scalar()
        last = self._connection.execute(select(func.max(runs.c.created_at)).where(runs.c.model == model)).scalar()
        return ModelState(active_run=active, last_started_at=last)

    def add_trigger(self, created_at: datetime, trigger: Trigger, verdict: Verdict, run_id: str | None) -> None:
        """Record a trigger and the policy's verdict."""
        self._connection.execute(
            insert(triggers).values(
                created_at=created_at,
                source=trigger.source,
                model=trigger.model[:200],
                alertname=trigger.alertname[:256],
                decision=verdict.decision,
                reason=verdict.reason[:500],
                run_id=run_id,
            )
        )

    def update_run(self, run_id: str, only_if: Sequence[RunStatus], values: dict[str, Any]) -> bool:
        """Change a run's columns when its status is one of ``only_if``; False when it was not."""
        statement = update(runs).where(runs.c.id == run_id, runs.c.status.in_(only_if)).values(**values)
        return bool(self._connection.execute(statement).rowcount == 1)

    def create_run(self, run_id: str, launcher: str, trigger: Trigger, created_at: datetime) -> RunRecord:
        """Record a pending run of the trigger's model (it becomes the model's active run)."""
        record = RunRecord(
            id=run_id,
            model=trigger.model,
            launcher=launcher,
            source=trigger.source,
            reason=trigger.reason[:500],
            status="pending",
            created_at=created_at,
        )
        self._connection.execute(
            insert(runs).values(
                id=record.id,
                model=record.model,
                launcher=record.launcher,
                source=record.source,
                reason=record.reason,
                status=record.status,
                active_model=record.model,
                created_at=record.created_at,
            )
        )
        return record


def _create_private_database(path: Path) -> None:
    """The SQLite file, created empty with mode 0600 (SQLite gives its -wal and -shm files the same mode)."""
    make_private_dirs(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        for file in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            restrict_to_owner(file)


def _sqlite_engine(url: str, timeout_s: float) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        _create_private_database(Path(database))
    engine = create_engine(url, connect_args={"timeout": timeout_s, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _: Any) -> None:
        # The driver's own transaction handling is off; ours begins every transaction (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # A writer takes the write lock first, so it never fails to upgrade a read lock half-way.
        write = connection.get_execution_options().get("berg_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgres_engine(url: str, timeout_s: float) -> Engine:
    milliseconds = int(timeout_s * 1000)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_timeout=timeout_s,
        connect_args={
            "connect_timeout": max(1, int(timeout_s)),
            "options": f"-c lock_timeout={milliseconds} -c statement_timeout={milliseconds * 6}",
        },
    )


def _add_missing_columns(engine: Engine) -> None:
    """Add the nullable columns a newer release brought to the tables of an older database.

    ``create_all`` creates missing tables only. Columns are only ever added, nullable, so adding them in place
    is the whole migration (a heavier tool would wait for the first change that is not).
    """
    with engine.begin() as connection:
        inspector = inspect(connection)
        for table in metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                if not column.nullable:
                    raise RuntimeError(f"column {table.name}.{column.name} is missing and cannot be added in place")
                exists_guard = "IF NOT EXISTS " if connection.dialect.name == "postgresql" else ""
                column_type = column.type.compile(dialect=connection.dialect)
                connection.exec_driver_sql(
                    f"ALTER TABLE {table.name} ADD COLUMN {exists_guard}{column.name} {column_type}"
                )


class ControllerStore:
    """The controller's tables behind a few typed operations; safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._write_lock = threading.Lock()

    @classmethod
    def open(cls, url: str, *, timeout_s: float = 5.0) -> ControllerStore:
        """Connect to ``url`` and create the tables that are missing.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        backend = make_url(url).get_backend_name()
        if backend == "sqlite":
            engine = _sqlite_engine(url, timeout_s)
        elif backend == "postgresql":
            engine = _postgres_engine(url, timeout_s)
        else:
            raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")
        store = cls(engine)
        with _transient_errors():
            metadata.create_all(engine)
            _add_missing_columns(engine)
        return store

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    @contextlib.contextmanager
    def write(self) -> Iterator[StoreTransaction]:
        """A write transaction, committed when the block ends without an error.

        Raises:
            StoreUnavailable: the database could not be used; nothing was committed.
        """
        with self._write_lock, _transient_errors(), self._engine.connect() as connection:
            connection.execution_options(berg_write=True)
            with connection.begin():
                yield StoreTransaction(connection)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with _transient_errors(), self._engine.connect() as connection, connection.begin():
            yield connection

    def ping(self) -> None:
        """Raise StoreUnavailable unless a trivial query answers."""
        with self._read() as connection:
            connection.execute(select(1))

    # Runs

    def run(self, run_id: str) -> RunRecord | None:
        with self._read() as connection:
            row = connection.execute(select(runs).where(runs.c.id == run_id)).first()
        return None if row is None else _run(row)

    def runs(self, limit: int, model: str | None = None) -> list[RunRecord]:
        """The latest ``limit`` runs, newest first."""
        query = select(runs).order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
        if model is not None:
            query = query.where(runs.c.model == model)
        with self._read() as connection:
            return [_run(row) for row in connection.execute(query)]

    def active_runs(self) -> list[RunRecord]:
        """Runs pending or running, oldest first."""
        query = select(runs).where(runs.c.status.in_(ACTIVE_STATUSES)).order_by(runs.c.created_at)
        with self._read() as connection:
            return [_run(row) for row in connection.execute(query)]

    def _update_run(self, run_id: str, only_if: Sequence[RunStatus], **values: Any) -> bool:
        with self.write() as tx:
            return tx.update_run(run_id, only_if, values)

    def mark_running(self, run_id: str, external_id: str, command: str, started_at: datetime) -> bool:
        """A pending run is being started; False when it is not pending any more."""
        return self._update_run(
            run_id,
            ("pending",),
            status="running",
            external_id=external_id[:200],
            command=command[:4000],
            started_at=started_at,
        )

    def mark_pending(self, run_id: str, detail: str) -> bool:
        """A running run turned out never to have started its pipeline: start it again."""
        return self._update_run(
            run_id, ("running",), status="pending", external_id=None, started_at=None, detail=detail[:1000]
        )

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        finished_at: datetime,
        *,
        exit_code: int | None,
        detail: str,
        failed_step: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Record how an active run ended (it stops being the model's active run); False if it had ended."""
        return self._update_run(
            run_id,
            ACTIVE_STATUSES,
            status=status,
            active_model=None,
            finished_at=finished_at,
            exit_code=exit_code,
            detail=detail[:1000],
            failed_step=failed_step[:MAX_STEP] if failed_step else None,
            error=error[:MAX_ERROR_BYTES] if error else None,
        )

    def set_result(self, run_id: str, version: str, promoted: bool) -> None:
        """Record the version a finished run registered."""
        self._update_run(run_id, ("succeeded", "failed"), result_version=version[:20], promoted=promoted)

    # Triggers

    def triggers(self, limit: int, model: str | None = None) -> list[TriggerRecord]:
        """The latest ``limit`` triggers, newest first."""
        query = select(triggers).order_by(triggers.c.created_at.desc(), triggers.c.id.desc()).limit(limit)
        if model is not None:
            query = query.where(triggers.c.model == model)
        with self._read() as connection:
            return [_trigger(row) for row in connection.execute(query)]
