"""The landing zone: decoded events as parquet, partitioned by event date, idempotent on ``event_id``.

Layout: ``<root>/<kind>/event_date=YYYY-MM-DD/part-<uuid>.parquet`` (Hive
partitioning, readable by pyarrow, pandas, DuckDB, Spark). Each write goes to a
hidden temporary file that is fsynced and renamed into place, so a reader or a
crash never sees half a file. Before writing, the zone drops events whose
``event_id`` is already landed in that date's partition: it keeps the ids of
the files it knows and reads the ``event_id`` column of files it has not seen
yet (written before a restart, or by another instance), so a redelivered batch
lands nothing twice.

The ids it keeps are a cache of what the files say, so forgetting them never lands
anything twice: a partition whose ids are forgotten is read again (all its files) on
its next write. To keep memory bounded, every ``evict_every`` appends the zone
forgets the partitions that no append touched since the previous pass and whose
date is more than ``keep_days`` before the newest date it has written: live traffic
keeps today's ids, a redelivery of an older batch costs one read of its partition,
and a backfill writing to old dates keeps its partitions while it writes to them.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

__all__ = ["LandingZone"]

_PARTITION_PREFIX = "event_date="


class LandingZone:
    """Append-only parquet storage for one service instance."""

    def __init__(self, root: Path, *, evict_every: int = 100, keep_days: int = 2) -> None:
        if evict_every < 1 or keep_days < 0:
            raise ValueError("evict_every must be >= 1 and keep_days >= 0")
        self.root = root
        self._evict_every = evict_every
        self._keep_days = timedelta(days=keep_days)
        self._known_files: dict[Path, set[str]] = defaultdict(set)
        self._known_ids: dict[Path, set[str]] = defaultdict(set)
        self._dates: dict[Path, date] = {}
        self._touched: set[Path] = set()
        self._appends = 0
        self._newest: date | None = None

    @property
    def cached_partitions(self) -> int:
        """Date partitions whose landed ids are held in memory."""
        return len(self._known_ids)

    def _partition(self, kind: str, event_date: date) -> Path:
        return self.root / kind / f"{_PARTITION_PREFIX}{event_date.isoformat()}"

    def _refresh(self, partition: Path) -> set[str]:
        known_files, known_ids = self._known_files[partition], self._known_ids[partition]
        if partition.is_dir():
            for path in partition.glob("part-*.parquet"):
                if path.name not in known_files:
                    column = pq.read_table(path, columns=["event_id"]).column("event_id")
                    known_ids.update(column.to_pylist())
                    known_files.add(path.name)
        return known_ids

    def append(self, kind: str, rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> int:
        """Land the rows whose ``event_id`` is new in their date partition.

        Args:
            kind: the stream's name, e.g. ``transactions`` or ``labels``.
            rows: one mapping per event with ``event_id`` (str) and ``event_time`` (aware datetime).
            schema: the parquet schema of ``kind``.

        Returns:
            How many rows were new and landed.
        """
        by_date: dict[date, list[Mapping[str, Any]]] = defaultdict(list)
        for row in rows:
            by_date[row["event_time"].date()].append(row)
        # A partition's path once per date, not per row: a Path costs microseconds to build.
        by_partition: dict[Path, list[Mapping[str, Any]]] = {}
        for event_date, date_rows in by_date.items():
            partition = self._partition(kind, event_date)
            by_partition[partition] = date_rows
            self._dates[partition] = event_date
            self._newest = event_date if self._newest is None else max(self._newest, event_date)
        landed = 0
        for partition, partition_rows in by_partition.items():
            self._touched.add(partition)
            known = self._refresh(partition)
            fresh: dict[str, Mapping[str, Any]] = {}
            for row in partition_rows:
                if row["event_id"] not in known:
                    fresh.setdefault(row["event_id"], row)
            if not fresh:
                continue
            name = self._write(partition, list(fresh.values()), schema)
            self._known_files[partition].add(name)
            known.update(fresh)
            landed += len(fresh)
        self._appends += 1
        if self._appends % self._evict_every == 0:
            self._forget_idle_partitions()
        return landed

    def _forget_idle_partitions(self) -> None:
        assert self._newest is not None
        horizon = self._newest - self._keep_days
        for partition in list(self._known_ids):
            if partition not in self._touched and self._dates[partition] < horizon:
                del self._known_ids[partition], self._known_files[partition], self._dates[partition]
        self._touched.clear()

    def _write(self, partition: Path, rows: list[Mapping[str, Any]], schema: pa.Schema) -> str:
        partition.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.parquet"
        temporary = partition / f".{name}.tmp"
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, partition / name)
        directory = os.open(partition, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return name

    def read(self, kind: str) -> pa.Table:
        """Everything landed for ``kind`` (an empty table when nothing is)."""
        folder = self.root / kind
        if not folder.is_dir():
            return pa.table({})
        dataset = ds.dataset(folder, format="parquet", partitioning="hive", exclude_invalid_files=True)
        return dataset.to_table()
