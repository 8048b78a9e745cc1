"""The scheduled merchant job: snapshots from the label store, then ``materialize_incremental``.

Runs in its own thread with its own ``FeatureStore``. Each run:

1. takes the watermark: the latest event time that every source partition has
   reached in the label store, less the allowed lateness;
2. recomputes the hourly snapshots of every day from ``recompute_hours`` before
   the last run's watermark (the first run: ``backfill_days`` back, bounded by the
   oldest transaction) up to the new watermark, and writes each day as one part
   named after it (a rerun replaces the day: newer labels, late transactions);
3. materializes the merchant view (only it) for the recomputed window, up to the watermark.

Not ``materialize_incremental``: it starts where the last run ended, so a snapshot
corrected by a recomputation would stay stale online, and its first run starts at
now minus the view's TTL, which skips a backfill whose event times are older.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.fs as pafs
from feast import FeatureStore

from berg.features.definitions import source_schema
from berg.features.label_store import LabelStore
from berg.features.offline_store import write_part
from berg.features.schema import (
    CREATED_TIMESTAMP,
    MERCHANT_FEATURES,
    MERCHANT_FRAUD_WINDOW,
    MERCHANT_KEY,
    MERCHANT_SNAPSHOT_EVERY,
    MERCHANT_VIEW,
)
from berg_features.merchants import merchant_snapshots
from berg_features.metrics import FeaturesMetrics

__all__ = ["MerchantJob", "snapshot_times"]

log = logging.getLogger(__name__)


def snapshot_times(start: datetime, end: datetime) -> list[datetime]:
    """Snapshot boundaries ``s`` with ``start <= s <= end``, every ``MERCHANT_SNAPSHOT_EVERY``."""
    step = MERCHANT_SNAPSHOT_EVERY
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    first = epoch + -((epoch - start) // step) * step
    times = []
    current = first
    while current <= end:
        times.append(current)
        current += step
    return times


class MerchantJob:
    """See the module docstring."""

    def __init__(
        self,
        store: FeatureStore,
        label_store: LabelStore,
        offline_root: str,
        metrics: FeaturesMetrics,
        *,
        allowed_lateness: timedelta,
        recompute: timedelta,
        backfill: timedelta,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._store = store
        self._labels = label_store
        self._metrics = metrics
        self._lateness = allowed_lateness
        self._recompute = recompute
        self._backfill = backfill
        self._clock = clock or (lambda: datetime.now(UTC))
        self._done_until: datetime | None = None
        uri = f"{offline_root.rstrip('/')}/{MERCHANT_VIEW}"
        if "://" in uri:
            self._filesystem, self._directory = pafs.FileSystem.from_uri(uri)
        else:
            self._filesystem, self._directory = pafs.LocalFileSystem(), uri
        self._schema = source_schema(MERCHANT_KEY, MERCHANT_FEATURES)

    def run_once(self) -> datetime | None:
        """One run; returns the watermark materialized to (``None`` with no transactions yet)."""
        latest = self._low_watermark()
        if latest is None:
            return None
        watermark = latest - self._lateness
        if self._done_until is None:
            oldest = self._labels.read("transactions", start=watermark - self._backfill, end=watermark)
            if oldest.empty:
                return None
            start = max(oldest["event_time"].min().to_pydatetime(), watermark - self._backfill)
        else:
            start = self._done_until - self._recompute
        days = sorted({moment.date() for moment in snapshot_times(start, watermark)})
        if days:
            self._write_days(days, watermark)
        self._materialize(start, watermark)
        self._done_until = watermark
        self._metrics.merchant_watermark.set(watermark.timestamp())
        return watermark

    def _low_watermark(self) -> datetime | None:
        # The latest event time every source partition has reached: a snapshot is computed
        # once no partition still has transactions before it on the way.
        latest = self._labels.latest_event_time("transactions")
        if latest is None:
            return None
        recent = self._labels.read("transactions", start=latest - self._backfill, columns=["source_partition"])
        if recent.empty:
            return None
        low: datetime = recent.groupby("source_partition")["event_time"].max().min().to_pydatetime()
        return low

    def _materialize(self, start: datetime, watermark: datetime) -> None:
        # Only the merchant view: the user view is pushed online by the stream, and a
        # materialization could put an older row over a newer one. The whole recomputed
        # window, not materialize_incremental: that starts where the last run ended, so it
        # would skip a snapshot this run corrected (and its first run would start at now
        # minus the TTL, skipping a backfill whose event times are older).
        self._store.materialize(start_date=start, end_date=watermark, feature_views=[MERCHANT_VIEW])

    def _write_days(self, days: list[date], watermark: datetime) -> None:
        first = datetime.combine(days[0], datetime.min.time(), UTC)
        transactions = self._labels.read("transactions", start=first - MERCHANT_FRAUD_WINDOW, end=watermark)
        labels = self._labels.read(
            "labels", start=first - MERCHANT_FRAUD_WINDOW, end=watermark + timedelta(microseconds=1)
        )
        by_day: dict[date, list[datetime]] = defaultdict(list)
        for moment in snapshot_times(first, watermark):
            by_day[moment.date()].append(moment)
        created = self._clock()
        for day in days:
            frame = merchant_snapshots(transactions, labels, by_day.get(day, []))
            frame[CREATED_TIMESTAMP] = created
            table = pa.Table.from_pandas(frame, preserve_index=False).select(self._schema.names).cast(self._schema)
            write_part(self._filesystem, self._directory, table, name=f"part-day-{day.isoformat()}.parquet")

    def run_forever(self, stop: threading.Event, interval_s: float) -> None:
        """Run every ``interval_s`` until ``stop``; a failed run is logged and retried next time."""
        while not stop.is_set():
            started = time.perf_counter()
            try:
                self.run_once()
                self._metrics.merchant_runs.labels("ok").inc()
            except Exception:
                log.exception("merchant snapshot run failed; retrying in %.0fs", interval_s)
                self._metrics.merchant_runs.labels("failed").inc()
            self._metrics.merchant_seconds.observe(time.perf_counter() - started)
            stop.wait(interval_s)
