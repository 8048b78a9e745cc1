"""The label store: the transactions the features service has processed, and their labels.

Training reads it to build its entity frame (which transactions, and whether each
turned out to be fraud); the features service also rebuilds its aggregate state
from it after a restart, and computes the merchant snapshots from it.

Layout, on a local folder or object storage (any pyarrow filesystem URI)::

    <root>/transactions/event_date=YYYY-MM-DD/part-<uuid>.parquet
    <root>/labels/event_date=YYYY-MM-DD/part-<uuid>.parquet

Writers append parts (temporary name, then rename) and never read; a redelivered
batch may append a row twice, so every reader keeps one row per ``event_id``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from berg.features.offline_store import write_part

__all__ = ["LABELS_SCHEMA", "TRANSACTIONS_SCHEMA", "LabelStore"]

_TIME = pa.timestamp("us", tz="UTC")
TRANSACTIONS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", _TIME),
        ("user_id", pa.string()),
        ("merchant_id", pa.string()),
        ("amount", pa.float64()),
        ("merchant_category", pa.string()),
        ("channel", pa.string()),
        ("country", pa.string()),
        ("source_partition", pa.int32()),
        ("source_offset", pa.int64()),
    ]
)
LABELS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", _TIME),
        ("transaction_event_id", pa.string()),
        ("user_id", pa.string()),
        ("is_fraud", pa.bool_()),
        ("source", pa.string()),
    ]
)
_SCHEMAS = {"transactions": TRANSACTIONS_SCHEMA, "labels": LABELS_SCHEMA}
_PARTITION = "event_date="


class LabelStore:
    """Append and read the label store under ``root`` (a path or a URI such as ``s3://bucket/labels``)."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self._filesystem: Any
        self._path: str
        if "://" in self.root:
            self._filesystem, self._path = pafs.FileSystem.from_uri(self.root)
        else:
            self._filesystem, self._path = pafs.LocalFileSystem(), self.root

    def append(self, kind: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Append rows of ``transactions`` or ``labels`` (``event_time`` an aware datetime)."""
        schema = _SCHEMAS[kind]
        by_date: dict[date, list[Mapping[str, Any]]] = defaultdict(list)
        for row in rows:
            by_date[row["event_time"].astimezone(UTC).date()].append(row)
        for event_date, dated in sorted(by_date.items()):
            table = pa.Table.from_pylist([{name: row[name] for name in schema.names} for row in dated], schema=schema)
            write_part(self._filesystem, f"{self._path}/{kind}/{_PARTITION}{event_date.isoformat()}", table)
        return len(rows)

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
        schema = _SCHEMAS[kind]
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
            condition = _and(condition, time >= pa.scalar(start, type=_TIME))
        if end is not None:
            condition = _and(condition, day <= end.astimezone(UTC).date().isoformat())
            condition = _and(condition, time < pa.scalar(end, type=_TIME))
        wanted = (
            schema.names
            if columns is None
            else ["event_id", "event_time", *(c for c in columns if c not in {"event_id", "event_time"})]
        )
        frame = dataset.to_table(filter=condition, columns=wanted).to_pandas()
        frame = frame.drop_duplicates("event_id", keep="first")
        return frame.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)

    def latest_event_time(self, kind: str) -> datetime | None:
        """The latest ``event_time`` held (reads the newest date partition only)."""
        base = f"{self._path}/{kind}"
        selector = pafs.FileSelector(base, allow_not_found=True)
        days = sorted(
            info.base_name.removeprefix(_PARTITION)
            for info in self._filesystem.get_file_info(selector)
            if info.type == pafs.FileType.Directory and info.base_name.startswith(_PARTITION)
        )
        for day in reversed(days):
            start = datetime.fromisoformat(day).replace(tzinfo=UTC)
            frame = self.read(kind, start, start + timedelta(days=1))
            if len(frame):
                latest: datetime = frame["event_time"].max().to_pydatetime()
                return latest
        return None

    def labelled_transactions(self, start: datetime, end: datetime, label_horizon: timedelta) -> pd.DataFrame:
        """Transactions with ``start <= event_time < end`` and their target.

        ``is_fraud`` is true when a fraud label for the transaction became known
        within ``label_horizon`` of it; ``label_time`` is when (NaT otherwise).
        Only transactions whose horizon has passed by the latest label held can
        be called legitimate, so callers choose ``end`` at least ``label_horizon``
        before that (the problem card's rule).
        """
        transactions = self.read("transactions", start, end)
        labels = self.read("labels", start, end + label_horizon)
        fraud = labels[labels["is_fraud"]].sort_values("event_time").drop_duplicates("transaction_event_id")
        fraud = fraud[["transaction_event_id", "event_time"]].rename(
            columns={"transaction_event_id": "event_id", "event_time": "label_time"}
        )
        frame = transactions.merge(fraud, on="event_id", how="left")
        frame["is_fraud"] = frame["label_time"].notna() & (frame["label_time"] - frame["event_time"] <= label_horizon)
        frame.loc[~frame["is_fraud"], "label_time"] = pd.NaT
        return frame.reset_index(drop=True)


def _and(left: ds.Expression | None, right: ds.Expression) -> ds.Expression:
    return right if left is None else left & right
