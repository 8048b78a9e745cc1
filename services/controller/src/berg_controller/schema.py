"""The controller's tables (SQLAlchemy Core): alert keys, triggers and runs, on SQLite or PostgreSQL.

Two constraints carry the controller's promises, so they hold even when two
requests race:

- ``alert_keys`` is UNIQUE on (model, fingerprint, startsAt, status): a redelivered
  notification finds its alerts already there and triggers nothing;
- ``runs.active_model`` is the model while a run is pending or running and NULL
  once it finished, and is UNIQUE: at most one active run per model (NULLs never
  collide, in SQLite and PostgreSQL alike).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

from berg.contracts.run_failure import MAX_ERROR_BYTES, MAX_STEP

__all__ = [
    "ACTIVE_STATUSES",
    "FINISHED_STATUSES",
    "RunStatus",
    "UtcDateTime",
    "alert_keys",
    "metadata",
    "runs",
    "triggers",
]

RunStatus = Literal["pending", "running", "succeeded", "failed"]
ACTIVE_STATUSES: tuple[RunStatus, ...] = ("pending", "running")
"""``pending``: recorded, not started yet; ``running``: started, its pid or KFP run id recorded."""
FINISHED_STATUSES: tuple[RunStatus, ...] = ("succeeded", "failed")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which stores naive text) as on PostgreSQL (timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware (UTC) datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_Id = BigInteger().with_variant(Integer(), "sqlite")
"""SQLite autoincrements only an INTEGER primary key."""

metadata = MetaData()

alert_keys = Table(
    "alert_keys",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("model", String(64), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    UniqueConstraint("model", "fingerprint", "starts_at", "status", name="uq_alert_keys"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(64), nullable=False),
    Column("launcher", String(16), nullable=False),
    Column("source", String(16), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("active_model", String(64), nullable=True, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("external_id", String(200), nullable=True),
    Column("command", String(4000), nullable=True),
    Column("exit_code", Integer(), nullable=True),
    Column("detail", String(1000), nullable=True),
    Column("result_version", String(20), nullable=True),
    Column("promoted", Boolean(), nullable=True),
    # Added after the first release: ControllerStore.open adds them to an older database.
    Column("failed_step", String(MAX_STEP), nullable=True),
    Column("error", String(MAX_ERROR_BYTES), nullable=True),
    Index("ix_runs_model_created", "model", "created_at"),
    Index("ix_runs_created", "created_at"),
)

triggers = Table(
    "triggers",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("source", String(16), nullable=False),
    Column("model", String(200), nullable=False),
    Column("alertname", String(256), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("run_id", String(32), nullable=True),
    Index("ix_triggers_created", "created_at"),
)
