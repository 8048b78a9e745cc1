"""The scheduled snapshot job: one snapshot view's rows from the label store, recomputed where their inputs changed.

One job per declared :class:`~berg.features.feature_set.SnapshotView`. Runs in its own thread with its own
``FeatureStore``, in the instance that consumes partition 0 of the scored events' topic (one writer of the
plan). Each run:

1. takes the watermark: the latest event time that every source partition has
   reached in the label store, less the allowed lateness (a snapshot at ``s`` is
   computed once no partition can still bring an event at or before ``s``);
2. reads the label store's notes of what arrived since the last run and updates
   the plan (:mod:`berg_features.snapshot_plan`): the days the watermark moved
   over, and every day whose snapshots the arrived rows change, however old (a
   backfill of last month's history recomputes last month; scored events also the
   snapshots before them whose availability they may move earlier, back to the
   partitions' previous events). The plan is stored
   (``<offline root>/snapshot_jobs/<view>/plan.json``) before the notes are deleted, so a
   restart loses nothing; recomputing a day twice writes the same part;
3. recomputes the newest ``days_per_run`` pending days (bounded work per run; the
   newest first, so a long backfill never holds up today's snapshots), each day
   as one part named after it (a rerun replaces the day), stamped when each
   snapshot became available: when the slowest source partition reached ``s`` plus
   the lateness (:func:`berg_features.snapshots.snapshot_availability`, read from
   the label store: a recomputation or a restart stamps the same);
4. materializes the view (only it) for the stamps those days changed
   that are still within the view's TTL, up to the newest event, and stores
   the plan without them.

Not ``materialize_incremental``: it starts where the last run ended, so a snapshot
corrected by a recomputation would stay stale online, and its first run starts at
now minus the view's TTL, which skips a backfill whose event times are older.

The label store's notes of what arrived are read once per round for every view's job and acknowledged once
every job's plan holds them (:class:`SnapshotJobs`, one thread for all the views).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
from feast import FeatureStore

from berg.features.definitions import view_source_schema
from berg.features.feature_set import CREATED_TIMESTAMP, EVENT_TIMESTAMP, SnapshotView
from berg.features.label_store import Arrival, LabelStore
from berg.features.parquet_parts import write_part
from berg.usecase import LabelJoin
from berg_features.metrics import FeaturesMetrics, SnapshotJobMetrics
from berg_features.run_schedule import RunSchedule
from berg_features.snapshot_plan import SnapshotPlan, contiguous_runs, next_plan
from berg_features.snapshots import (
    availability_changed_after,
    next_snapshot_after,
    snapshot_availability,
    snapshot_rows,
    snapshot_times,
    visible_snapshots,
)

__all__ = ["JOBS_FOLDER", "SnapshotJob", "SnapshotJobs"]

log = logging.getLogger(__name__)

JOBS_FOLDER = "snapshot_jobs"
"""Under the offline root: one folder per snapshot view, holding its job's plan."""
_PLAN = "plan.json"
_MICROSECOND = timedelta(microseconds=1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


@dataclass(frozen=True)
class _Progress:
    """How far the source partitions are in the label store."""

    low: datetime
    """The latest event time every partition has reached."""
    latest: datetime
    """The newest event's event time: no snapshot is stamped later."""
    partitions: frozenset[int]
    """The partitions with events in the backfill before ``latest``: the watermark's and each stamp's."""


class SnapshotJob:
    """Computes, stores and materializes one snapshot view; see the module docstring.

    Example:
        >>> job = SnapshotJob(view, use_case.label_join, store, label_store, offline_root, metrics,
        ...                   allowed_lateness=timedelta(hours=1), backfill=timedelta(days=35))
        >>> job.run_once()
    """

    def __init__(
        self,
        view: SnapshotView,
        join: LabelJoin,
        store: FeatureStore,
        label_store: LabelStore,
        offline_root: str,
        metrics: FeaturesMetrics,
        *,
        allowed_lateness: timedelta,
        backfill: timedelta,
        days_per_run: int = 7,
        clock: Callable[[], datetime] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._view = view
        self._join = join
        self._store = store
        self._labels = label_store
        self._metrics = metrics.snapshot_job(view.name)
        self._lateness = allowed_lateness
        self._backfill = backfill
        self._days_per_run = days_per_run
        self._clock = clock or (lambda: datetime.now(UTC))
        self._wall_clock = wall_clock
        root = offline_root.rstrip("/")
        if "://" in root:
            self._filesystem, root = pafs.FileSystem.from_uri(root)
        else:
            self._filesystem = pafs.LocalFileSystem()
        self._directory = f"{root}/{view.name}"
        self._plan_path = f"{root}/{JOBS_FOLDER}/{view.name}/{_PLAN}"
        self._schema = view_source_schema(view)

    @property
    def view(self) -> SnapshotView:
        return self._view

    @property
    def metrics(self) -> SnapshotJobMetrics:
        """This view's series of the job metrics."""
        return self._metrics

    def run_once(self) -> datetime | None:
        """One run of this job alone: reads what arrived, and acknowledges it once the plan holds it (with
        several views, :class:`SnapshotJobs` runs them). Returns the watermark (``None`` with no events yet)."""
        # Taken before the first read: the run covers every write to the label store that ended before it.
        started_at = self._wall_clock()
        arrivals = self._labels.arrivals()
        watermark = self.run(arrivals, started_at)
        if watermark is not None:
            self._labels.acknowledge(arrivals)
        return watermark

    def run(self, arrivals: list[Arrival], started_at: float) -> datetime | None:
        """One run over ``arrivals`` (read from the label store at ``started_at`` or after, on the wall clock),
        which the caller acknowledges once every job has planned them: a job stores its plan first, so a crash
        in between only plans them again. Returns the watermark snapshots are computed to (``None`` with no
        events yet: nothing is planned)."""
        progress = self._progress()
        if progress is None:
            self._metrics.run_started.set(started_at)
            return None
        previous = self._read_plan()
        watermark = progress.low - self._lateness
        first_day = None
        if previous is None:
            # First run on this store: what it already holds, as far back as the backfill goes
            # (what arrives from now on has its notes).
            earliest = self._labels.earliest_event_date(self._labels.scored) or watermark.date()
            first_day = max(earliest, (watermark - self._backfill).date())
        plan = next_plan(previous, watermark, self._changes(arrivals, progress), first_day, window=self._view.window)
        self._write_plan(plan)
        days = plan.newest(self._days_per_run)
        stamps = [self._write_days(run, plan.watermark, progress) for run in contiguous_runs(days)]
        self._materialize(days, max((stamp for stamp in stamps if stamp is not None), default=None), progress)
        done = plan.without(days)
        self._write_plan(done)
        self._metrics.watermark.set(plan.watermark.timestamp())
        next_due = next_snapshot_after(plan.watermark, self._view.every) + self._lateness
        self._metrics.next_due.set(next_due.timestamp())
        self._metrics.pending_days.set(len(done.pending))
        self._metrics.run_started.set(started_at)
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

    def _changes(self, arrivals: list[Arrival], progress: _Progress) -> list[tuple[datetime, datetime]]:
        """The event-time spans whose snapshots what arrived changes: labels and scored events feed the
        snapshots from their time on; events also move earlier the availability of snapshots
        before them (back to the partitions' previous events, and one snapshot more: whether a
        snapshot is stored depends on the next one's availability)."""
        spans = [span for arrival in arrivals if arrival.kind != self._labels.scored for span in arrival.spans]
        arrived = [span for arrival in arrivals if arrival.kind == self._labels.scored for span in arrival.spans]
        if not arrived:
            return spans
        starts = sorted({first for first, _ in arrived})
        changed_after = self._changed_after(starts, progress)
        reach = self._lateness + self._view.every
        return [*spans, *((changed_after[first] - reach, last) for first, last in arrived)]

    def _changed_after(self, starts: list[datetime], progress: _Progress) -> dict[datetime, datetime]:
        """:func:`availability_changed_after` of ``starts``, reading back a day before the first, twice as
        far each retry, to the label store's first day at most (then: from its first event)."""
        first_day = self._labels.earliest_event_date(self._labels.scored)
        floor = starts[0] if first_day is None else min(_midnight(first_day), starts[0])
        look = timedelta(days=1)
        while True:
            begin = max(starts[0] - look, floor)
            before = self._labels.read(self._labels.scored, start=begin, end=starts[-1], columns=["source_partition"])
            found = availability_changed_after(before, starts, partitions=progress.partitions)
            if all(moment is not None for moment in found) or begin <= floor:
                return {start: floor if moment is None else moment for start, moment in zip(starts, found, strict=True)}
            look *= 2

    def _progress(self) -> _Progress | None:
        # The latest event time every source partition has reached: a snapshot is computed
        # once no partition still has events before it on the way.
        latest = self._labels.latest_event_time(self._labels.scored)
        if latest is None:
            return None
        recent = self._labels.read(self._labels.scored, start=latest - self._backfill, columns=["source_partition"])
        if recent.empty:
            return None
        newest = recent.groupby("source_partition")["event_time"].max()
        return _Progress(
            low=newest.min().to_pydatetime(),
            latest=max(latest, newest.max().to_pydatetime()),
            partitions=frozenset(int(partition) for partition in newest.index),
        )

    def _availability(self, times: list[datetime], progress: _Progress) -> list[datetime | None]:
        """When each of ``times`` became available; reads from the first crossing on, only as far as
        the slowest partition's crossings (an hour past the last at first, twice as far each retry)."""
        if not times:
            return []
        first, last = times[0] + self._lateness, times[-1] + self._lateness
        reach = self._view.every
        while True:
            end = min(last + reach, progress.latest + _MICROSECOND)
            crossings = self._labels.read(self._labels.scored, start=first, end=end, columns=["source_partition"])
            available = snapshot_availability(crossings, times, lateness=self._lateness, partitions=progress.partitions)
            if all(stamp is not None for stamp in available) or end > progress.latest:
                return available
            reach *= 2

    def _materialize(self, days: list[date], newest_stamp: datetime | None, progress: _Progress) -> None:
        # Only this view: the streaming views are pushed online by the stream, and a
        # materialization could put an older row over a newer one. From the first stamp the
        # run changed (a row past the TTL is of no use online) to the newest event, which
        # no stamp is after: each key's newest row in that window is its newest row of all,
        # so nothing newer is overwritten.
        if not days or newest_stamp is None:
            return
        end = progress.latest
        start = max(_midnight(days[0]) + self._lateness, end - self._view.ttl)
        if newest_stamp < start:
            return
        self._store.materialize(start_date=start, end_date=end, feature_views=[self._view.name])

    def _write_days(self, days: list[date], watermark: datetime, progress: _Progress) -> datetime | None:
        """Recompute consecutive ``days`` (snapshots up to ``watermark``) from one read; returns the
        newest stamp written (``None``: no row)."""
        first = _midnight(days[0])
        until = min(_midnight(days[-1]) + timedelta(days=1), watermark + _MICROSECOND)
        view, join, reach = self._view, self._join, self._view.window
        events = self._labels.read(self._labels.scored, start=first - reach, end=until)
        labels = self._labels.read(self._labels.labels, start=first - reach, end=until)
        times = snapshot_times(first, min(until - _MICROSECOND, watermark), view.every)
        # The snapshot after the last, when the watermark has passed it: one available together with
        # it is not stored (see visible_snapshots).
        following = [times[-1] + view.every] if times else []
        following = [moment for moment in following if moment <= watermark]
        available = self._availability([*times, *following], progress)
        by_day: dict[date, list[tuple[datetime, datetime]]] = defaultdict(list)
        next_available = available[-1] if following else None
        for moment, stamp in visible_snapshots(times, available[: len(times)], next_available):
            by_day[moment.date()].append((moment, stamp))
        created = self._clock()
        newest: datetime | None = None
        for day in days:
            moments = by_day.get(day, [])
            frame = snapshot_rows(
                view, join, events, labels, [moment for moment, _ in moments], available=[at for _, at in moments]
            )
            if len(frame):
                stamp = pd.Timestamp(frame[EVENT_TIMESTAMP].max()).to_pydatetime()
                newest = stamp if newest is None else max(newest, stamp)
            frame[CREATED_TIMESTAMP] = created
            table = pa.Table.from_pandas(frame, preserve_index=False).select(self._schema.names).cast(self._schema)
            write_part(self._filesystem, self._directory, table, name=f"part-day-{day.isoformat()}.parquet")
        return newest


class SnapshotJobs:
    """Every snapshot view's job, one after the other in one thread, in the instance that leads.

    Each round takes its start on the wall clock, then reads the label store's notes of what arrived once
    for all the jobs, runs each job over them and acknowledges them only when every job has planned them
    (a job that failed plans them again next round). A round's start is each job's
    ``berg_features_snapshot_run_started_timestamp_seconds``: every write that ended before it is covered.
    """

    def __init__(
        self, jobs: Sequence[SnapshotJob], label_store: LabelStore, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._jobs = tuple(jobs)
        self._labels = label_store
        self._wall_clock = wall_clock
        self._leading = threading.Event()
        self._running = threading.Lock()

    @property
    def jobs(self) -> tuple[SnapshotJob, ...]:
        return self._jobs

    def run_once(self) -> bool:
        """One round; returns whether every job ran (and what arrived was acknowledged)."""
        # Taken before the first read: the round covers every write to the label store that ended before it.
        started_at = self._wall_clock()
        arrivals = self._labels.arrivals()
        planned = [self._run_logged(job, arrivals, started_at) for job in self._jobs]
        if all(planned):
            self._labels.acknowledge(arrivals)
        return all(planned)

    def _run_logged(self, job: SnapshotJob, arrivals: list[Arrival], started_at: float) -> bool:
        metrics = job.metrics
        started = time.perf_counter()
        try:
            planned = job.run(arrivals, started_at) is not None
            metrics.runs_ok.inc()
        except Exception:
            log.exception("snapshot run of %s failed; retrying on the next run", job.view.name)
            metrics.runs_failed.inc()
            planned = False
        metrics.seconds.observe(time.perf_counter() - started)
        return planned

    def lead(self) -> None:
        """This instance runs the jobs from now on (it consumes partition 0 of the scored events)."""
        self._leading.set()

    def step_down(self) -> None:
        """Stop running the jobs; returns once a round in flight has finished, so two instances
        never run them at once (called while the group rebalances, before another instance leads)."""
        self._leading.clear()
        with self._running:
            pass

    def run_forever(self, stop: threading.Event, schedule: RunSchedule) -> None:
        """Run a round when ``schedule`` says, while leading, until ``stop``; a failed run is logged and retried."""
        while not stop.is_set():
            with self._running:
                schedule.starting()
                if self._leading.is_set():
                    self.run_once()
            schedule.wait(stop)
