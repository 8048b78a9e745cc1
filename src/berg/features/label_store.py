"""The label store: the scored events the features service has processed, and their labels.

Training reads it to build its entity frame (which events, and whether each turned
out positive); the features service also rebuilds its aggregate state from it after
a restart, and computes the snapshot views from it. It holds a use case's two
streams, each under its stream's name, with a schema derived from the stream's
contract.

Layout, on a local folder or object storage (any pyarrow filesystem URI), for a use
case whose streams are ``transactions`` and ``labels``::

    <root>/transactions/event_date=YYYY-MM-DD/part-<uuid>.parquet
    <root>/labels/event_date=YYYY-MM-DD/part-<uuid>.parquet
    <root>/arrivals/<uuid>.json

Writers append parts (temporary name, then rename) and never read; a redelivered
batch may append a row twice, so every reader keeps one row per ``event_id``.

Each append also leaves a note of what arrived (the kind, and the earliest and
latest event time written to each date): the snapshot jobs read the notes to
recompute exactly the snapshots the new rows change, however old, and deletes
them once that is recorded. The note is written after the rows, so whoever sees
a note finds its rows.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from pydantic import BaseModel

from berg.contracts.shape import contract_columns
from berg.contracts.shape_arrow import ARROW_TIMESTAMP, arrow_fields
from berg.features.feature_set import ARRIVAL_TIME
from berg.features.parquet_parts import write_part

if TYPE_CHECKING:
    from berg.usecase import LabelJoin, Stream

__all__ = ["ARRIVAL_TIME", "Arrival", "LabelStore", "label_schema", "scored_schema"]


def scored_schema(contract: type[BaseModel]) -> pa.Schema:
    """The scored events' schema: the contract's fields (no version) plus the Kafka coordinates the
    features service read each event at."""
    return pa.schema(
        [
            *arrow_fields(contract_columns(contract, exclude={"schema_version"})),
            pa.field("source_partition", pa.int32()),
            pa.field("source_offset", pa.int64()),
        ]
    )


def label_schema(contract: type[BaseModel]) -> pa.Schema:
    """The labels' schema: the contract's fields (no version) plus :data:`ARRIVAL_TIME`."""
    return pa.schema(
        [
            *arrow_fields(contract_columns(contract, exclude={"schema_version"})),
            pa.field(ARRIVAL_TIME, ARROW_TIMESTAMP),
        ]
    )


_PARTITION = "event_date="
_ARRIVALS = "arrivals"


@dataclass(frozen=True)
class Arrival:
    """One append to the label store, as its note tells it."""

    note: str
    """The note's path: what :meth:`LabelStore.acknowledge` deletes."""
    kind: str
    """The stream appended to: the scored events' or the labels'."""
    spans: tuple[tuple[datetime, datetime], ...]
    """The earliest and latest event time of the rows written, one pair per event date."""


class LabelStore:
    """Append and read the label store of a use case's ``scored`` and ``labels`` streams under ``root``
    (a path or a URI such as ``s3://bucket/labels``). A stream's rows are read and written by its name
    (its *kind*: :attr:`scored` and :attr:`labels`)."""

    def __init__(self, root: str, scored: Stream, labels: Stream) -> None:
        self.scored = scored.name
        """The scored events' kind."""
        self.labels = labels.name
        """The labels' kind."""
        self._schemas = {scored.name: scored_schema(scored.contract), labels.name: label_schema(labels.contract)}
        self.root = root.rstrip("/")
        self._filesystem: Any
        self._path: str
        if "://" in self.root:
            self._filesystem, self._path = pafs.FileSystem.from_uri(self.root)
        else:
            self._filesystem, self._path = pafs.LocalFileSystem(), self.root

    def schema(self, kind: str) -> pa.Schema:
        """The parquet schema of ``kind``'s rows."""
        return self._schemas[kind]

    def append(self, kind: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Append rows of ``kind`` (``event_time`` an aware datetime; fields the schema lacks are left out).

        A label's :data:`ARRIVAL_TIME` is its row's, or its event time where the row has none or an earlier one
        (a label cannot arrive before it was issued).
        """
        schema = self._schemas[kind]
        by_date: dict[date, list[Mapping[str, Any]]] = defaultdict(list)
        for row in rows:
            if ARRIVAL_TIME in schema.names:
                arrived = row.get(ARRIVAL_TIME)
                row = {**row, ARRIVAL_TIME: row["event_time"] if arrived is None else max(arrived, row["event_time"])}
            by_date[row["event_time"].astimezone(UTC).date()].append(row)
        spans = []
        for event_date, dated in sorted(by_date.items()):
            table = pa.Table.from_pylist([{name: row[name] for name in schema.names} for row in dated], schema=schema)
            write_part(self._filesystem, f"{self._path}/{kind}/{_PARTITION}{event_date.isoformat()}", table)
            times = [row["event_time"] for row in dated]
            spans.append([min(times).astimezone(UTC).isoformat(), max(times).astimezone(UTC).isoformat()])
        if spans:
            self._write_note({"kind": kind, "spans": spans})
        return len(rows)

    def _write_note(self, note: dict[str, Any]) -> None:
        directory = f"{self._path}/{_ARRIVALS}"
        self._filesystem.create_dir(directory, recursive=True)
        temporary = f"{directory}/.tmp-{uuid.uuid4().hex}"
        with self._filesystem.open_output_stream(temporary) as sink:
            sink.write(json.dumps(note).encode())
        self._filesystem.move(temporary, f"{directory}/{uuid.uuid4().hex}.json")

    def arrivals(self, limit: int = 10_000) -> list[Arrival]:
        """What was appended since the notes were last acknowledged (at most ``limit`` notes)."""
        selector = pafs.FileSelector(f"{self._path}/{_ARRIVALS}", allow_not_found=True)
        paths = sorted(
            info.path
            for info in self._filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File and info.base_name.endswith(".json")
        )[:limit]
        found = []
        for path in paths:
            try:
                with self._filesystem.open_input_stream(path) as source:
                    note = json.loads(source.read())
            except FileNotFoundError:
                continue  # acknowledged meanwhile
            spans = tuple(
                (datetime.fromisoformat(first), datetime.fromisoformat(last)) for first, last in note["spans"]
            )
            found.append(Arrival(path, note["kind"], spans))
        return found

    def acknowledge(self, arrivals: Iterable[Arrival]) -> None:
        """Delete the notes of ``arrivals``: their consequences are recorded elsewhere."""
        for arrival in arrivals:
            try:
                self._filesystem.delete_file(arrival.note)
            except FileNotFoundError:
                continue

    def earliest_event_date(self, kind: str) -> date | None:
        """The oldest event date partition of ``kind`` (from the folder names; None when empty)."""
        days = self._days(kind)
        return date.fromisoformat(days[0]) if days else None

    def _days(self, kind: str) -> list[str]:
        selector = pafs.FileSelector(f"{self._path}/{kind}", allow_not_found=True)
        return sorted(
            info.base_name.removeprefix(_PARTITION)
            for info in self._filesystem.get_file_info(selector)
            if info.type == pafs.FileType.Directory and info.base_name.startswith(_PARTITION)
        )

    def read(
        self,
        kind: str,
        start: datetime | None = None,
        end: datetime | None = None,
        filter_expression: ds.Expression | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Rows of ``kind`` with ``start <= event_time < end``, one per ``event_id``, oldest first.

        ``columns`` limits what is read (``event_id`` and ``event_time`` always come along).
        """
        schema = self._schemas[kind]
        base = f"{self._path}/{kind}"
        if self._filesystem.get_file_info(base).type == pafs.FileType.NotFound:
            return schema.empty_table().to_pandas()
        dataset = ds.dataset(
            base,
            filesystem=self._filesystem,
            format="parquet",
            schema=schema.append(pa.field("event_date", pa.string())),
            partitioning=ds.partitioning(pa.schema([("event_date", pa.string())]), flavor="hive"),
            exclude_invalid_files=False,
        )
        condition = filter_expression
        time = ds.field("event_time")
        day = ds.field("event_date")
        if start is not None:
            # Partition pruning first (whole days), then the exact bound.
            condition = _and(condition, day >= start.astimezone(UTC).date().isoformat())
            condition = _and(condition, time >= pa.scalar(start, type=ARROW_TIMESTAMP))
        if end is not None:
            condition = _and(condition, day <= end.astimezone(UTC).date().isoformat())
            condition = _and(condition, time < pa.scalar(end, type=ARROW_TIMESTAMP))
        wanted = (
            schema.names
            if columns is None
            else ["event_id", "event_time", *(c for c in columns if c not in {"event_id", "event_time"})]
        )
        frame = dataset.to_table(filter=condition, columns=wanted).to_pandas()
        if ARRIVAL_TIME in frame.columns:
            # Parts written before the column existed: those labels count from their event time.
            frame[ARRIVAL_TIME] = frame[ARRIVAL_TIME].fillna(frame["event_time"])
        frame = frame.drop_duplicates("event_id", keep="first")
        return frame.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)

    def latest_event_time(self, kind: str) -> datetime | None:
        """The latest ``event_time`` held (reads the newest date partition only)."""
        for day in reversed(self._days(kind)):
            start = datetime.fromisoformat(day).replace(tzinfo=UTC)
            frame = self.read(kind, start, start + timedelta(days=1))
            if len(frame):
                latest: datetime = frame["event_time"].max().to_pydatetime()
                return latest
        return None

    def labelled_events(
        self, start: datetime, end: datetime, label_horizon: timedelta, join: LabelJoin
    ) -> pd.DataFrame:
        """Scored events with ``start <= event_time < end`` and their target.

        The target (``join.target``) is true when a positive label for the event (its
        ``join.subject_id`` naming the event's ``join.event_id``) became known within
        ``label_horizon`` of it; ``label_time`` is when (NaT otherwise). Only events whose
        horizon has passed by the latest label held can be called negative, so callers
        choose ``end`` at least ``label_horizon`` before that (the problem card's rule).
        """
        events = self.read(self.scored, start, end)
        labels = self.read(self.labels, start, end + label_horizon)
        positive = labels[labels[join.target].astype(bool)].sort_values("event_time").drop_duplicates(join.subject_id)
        positive = positive[[join.subject_id, "event_time"]].rename(
            columns={join.subject_id: join.event_id, "event_time": "label_time"}
        )
        frame = events.merge(positive, on=join.event_id, how="left")
        frame[join.target] = frame["label_time"].notna() & (frame["label_time"] - frame["event_time"] <= label_horizon)
        frame.loc[~frame[join.target], "label_time"] = pd.NaT
        return frame.reset_index(drop=True)


def _and(left: ds.Expression | None, right: ds.Expression) -> ds.Expression:
    return right if left is None else left & right
