"""The scheduled merchant job: snapshots from the label store, recomputed where their inputs changed.

Runs in its own thread with its own ``FeatureStore``, in the instance that
consumes partition 0 of the transactions topic (one writer of the plan). Each run:

1. takes the watermark: the latest event time that every source partition has
   reached in the label store, less the allowed lateness (a snapshot at ``s`` is
   computed once no partition can still bring a transaction at or before ``s``);
2. reads the label store's notes of what arrived since the last run and updates
   the plan (:mod:`berg_features.snapshot_plan`): the days the watermark moved
   over, and every day whose snapshots the arrived rows change, however old (a
   backfill of last month's history recomputes last month). The plan is stored
   (``<offline root>/merchant_job/plan.json``) before the notes are deleted, so a
   restart loses nothing; recomputing a day twice writes the same part;
3. recomputes the newest ``days_per_run`` pending days (bounded work per run; the
   newest first, so a long backfill never holds up today's snapshots), each day
   as one part named after it (a rerun replaces the day), stamped when each
   snapshot became available (``s`` plus the lateness: see :mod:`berg_features.merchants`);
4. materializes the merchant view (only it) for the stamps those days changed
   that are still within the view's TTL, up to the watermark, and stores the plan
   without them.

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
    MERCHANT_TTL,
    MERCHANT_VIEW,
)
from berg_features.merchants import merchant_snapshots
from berg_features.metrics import FeaturesMetrics
from berg_features.snapshot_plan import SnapshotPlan, contiguous_runs, next_plan

__all__ = ["JOB_FOLDER", "MerchantJob", "snapshot_times"]

log = logging.getLogger(__name__)

JOB_FOLDER = "merchant_job"
"""Under the offline root: the job's plan."""
_PLAN = "plan.json"
_MICROSECOND = timedelta(microseconds=1)


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


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


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
        backfill: timedelta,
        days_per_run: int = 7,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._store = store
        self._labels = label_store
        self._metrics = metrics
        self._lateness = allowed_lateness
        self._backfill = backfill
        self._days_per_run = days_per_run
        self._clock = clock or (lambda: datetime.now(UTC))
        root = offline_root.rstrip("/")
        if "://" in root:
            self._filesystem, root = pafs.FileSystem.from_uri(root)
        else:
            self._filesystem = pafs.LocalFileSystem()
        self._directory = f"{root}/{MERCHANT_VIEW}"
        self._plan_path = f"{root}/{JOB_FOLDER}/{_PLAN}"
        self._schema = source_schema(MERCHANT_KEY, MERCHANT_FEATURES)
        self._leading = threading.Event()
        self._running = threading.Lock()

    def run_once(self) -> datetime | None:
        """One run; returns the watermark snapshots are computed to (``None`` with no transactions yet)."""
        low = self._low_watermark()
        if low is None:
            return None
        previous = self._read_plan()
        watermark = low - self._lateness
        first_day = None
        if previous is None:
            # First run on this store: what it already holds, as far back as the backfill goes
            # (what arrives from now on has its notes).
            earliest = self._labels.earliest_event_date("transactions") or watermark.date()
            first_day = max(earliest, (watermark - self._backfill).date())
        arrivals = self._labels.arrivals()
        plan = next_plan(previous, watermark, (span for arrival in arrivals for span in arrival.spans), first_day)
        self._write_plan(plan)
        self._labels.acknowledge(arrivals)
        days = plan.newest(self._days_per_run)
        for run in contiguous_runs(days):
            self._write_days(run, plan.watermark)
        self._materialize(days, plan.watermark)
        done = plan.without(days)
        self._write_plan(done)
        self._metrics.merchant_watermark.set(plan.watermark.timestamp())
        self._metrics.merchant_pending_days.set(len(done.pending))
        return plan.watermark

    @property
    def pending_days(self) -> int:
        """Days still to recompute, as stored."""
        plan = self._read_plan()
        return 0 if plan is None else len(plan.pending)

    def _read_plan(self) -> SnapshotPlan | None:
        try:
            with self._filesystem.open_input_stream(self._plan_path) as source:
                return SnapshotPlan.from_json(source.read().decode())
        except FileNotFoundError:
            return None

    def _write_plan(self, plan: SnapshotPlan) -> None:
        directory = self._plan_path.rsplit("/", 1)[0]
        self._filesystem.create_dir(directory, recursive=True)
        temporary = f"{directory}/.tmp-{_PLAN}"
        with self._filesystem.open_output_stream(temporary) as sink:
            sink.write(plan.to_json().encode())
        self._filesystem.move(temporary, self._plan_path)

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

    def _materialize(self, days: list[date], watermark: datetime) -> None:
        # Only the merchant view: the user view is pushed online by the stream, and a
        # materialization could put an older row over a newer one. From the first stamp the
        # run changed (a row past the TTL is of no use online) to the newest: each merchant's
        # newest row in that window is its newest row of all, so nothing newer is overwritten.
        if not days:
            return
        end = watermark + self._lateness
        start = max(_midnight(days[0]) + self._lateness, end - MERCHANT_TTL)
        changed_until = min(_midnight(days[-1]) + timedelta(days=1), watermark) + self._lateness
        if changed_until < start:
            return
        self._store.materialize(start_date=start, end_date=end, feature_views=[MERCHANT_VIEW])

    def _write_days(self, days: list[date], watermark: datetime) -> None:
        """Recompute consecutive ``days`` (snapshots up to ``watermark``) from one read."""
        first = _midnight(days[0])
        until = min(_midnight(days[-1]) + timedelta(days=1), watermark + _MICROSECOND)
        transactions = self._labels.read("transactions", start=first - MERCHANT_FRAUD_WINDOW, end=until)
        labels = self._labels.read("labels", start=first - MERCHANT_FRAUD_WINDOW, end=until)
        by_day: dict[date, list[datetime]] = defaultdict(list)
        for moment in snapshot_times(first, min(until - _MICROSECOND, watermark)):
            by_day[moment.date()].append(moment)
        created = self._clock()
        for day in days:
            frame = merchant_snapshots(transactions, labels, by_day.get(day, []), available_after=self._lateness)
            frame[CREATED_TIMESTAMP] = created
            table = pa.Table.from_pandas(frame, preserve_index=False).select(self._schema.names).cast(self._schema)
            write_part(self._filesystem, self._directory, table, name=f"part-day-{day.isoformat()}.parquet")

    def lead(self) -> None:
        """This instance runs the job from now on (it consumes partition 0 of the transactions)."""
        self._leading.set()

    def step_down(self) -> None:
        """Stop running the job; returns once a run in flight has finished, so two instances
        never run it at once (called while the group rebalances, before another instance leads)."""
        self._leading.clear()
        with self._running:
            pass

    def run_forever(self, stop: threading.Event, interval_s: float) -> None:
        """Run every ``interval_s`` while leading, until ``stop``; a failed run is logged and retried."""
        while not stop.is_set():
            with self._running:
                if self._leading.is_set():
                    self._run_logged(interval_s)
            stop.wait(interval_s)

    def _run_logged(self, interval_s: float) -> None:
        started = time.perf_counter()
        try:
            self.run_once()
            self._metrics.merchant_runs.labels("ok").inc()
        except Exception:
            log.exception("merchant snapshot run failed; retrying in %.0fs", interval_s)
            self._metrics.merchant_runs.labels("failed").inc()
        self._metrics.merchant_seconds.observe(time.perf_counter() - started)
