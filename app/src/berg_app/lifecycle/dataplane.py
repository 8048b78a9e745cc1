"""Has the data plane caught up? The replay's freshness barrier.

An application scores an event with the features known at that moment: the data
plane has stored everything before it. A replay of weeks in minutes gets there by
waiting, before each slice of event time it scores, until ingestion, validation and
the features service have stored everything produced so far.

Each stage commits its offsets only after its sinks hold the records, so a stage has
caught up when every consumer group that reads its input topics has committed up to
their end. The stages are checked in pipeline order, each against the ends of its
input topics read once the stage before it has caught up: by then every record that
stage will write for what was produced is on its output topic. Which groups read a
topic is found in Kafka (the groups with committed offsets on it), so the probe needs
no service's settings.

The features service's snapshot views (a use case's daily aggregates over its label store) are a batch job,
one per view. Its ``/metrics`` say, per view (label ``view``), when its last successful run started,
and when the service last wrote to the label store, both on the service's own clock: once the data
plane has caught up, :func:`wait_for_snapshot_job` waits until, for every view, a run started after
that write has finished and no day is left to recompute (the service starts a run soon after new
data: ``BERG_FEATURES_SNAPSHOT_MIN_INTERVAL_S``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from berg.kafka.security import client_security
from berg.settings import KafkaSettings
from berg.usecase import UseCase

__all__ = [
    "LABEL_STORE_WRITTEN_METRIC",
    "SNAPSHOT_NEXT_DUE_METRIC",
    "SNAPSHOT_PENDING_METRIC",
    "SNAPSHOT_RUNS_METRIC",
    "SNAPSHOT_RUN_STARTED_METRIC",
    "SNAPSHOT_WATERMARK_METRIC",
    "DataPlaneBehind",
    "DataPlaneProbe",
    "SnapshotJobState",
    "data_plane_stages",
    "records_behind",
    "snapshot_job_state",
    "snapshot_job_state_from",
    "wait_for_settled_snapshots",
    "wait_for_snapshot_job",
]


def data_plane_stages(use_case: UseCase) -> tuple[tuple[str, ...], ...]:
    """The input topics of ingestion, validation and the features service, in pipeline order: the use
    case's raw topics, then its ingested ones, then its valid ones."""
    scored, labels = use_case.scored, use_case.labels
    return (
        (scored.raw_topic, labels.raw_topic),
        (scored.ingested_topic, labels.ingested_topic),
        (scored.valid_topic, labels.valid_topic),
    )


# The snapshot job's metrics: one series per snapshot view (label ``view``).
SNAPSHOT_WATERMARK_METRIC = "berg_features_snapshot_watermark_timestamp_seconds"
SNAPSHOT_RUNS_METRIC = "berg_features_snapshot_runs_total"
SNAPSHOT_PENDING_METRIC = "berg_features_snapshot_pending_days"
"""Days whose inputs changed and that the job has not recomputed yet."""
SNAPSHOT_RUN_STARTED_METRIC = "berg_features_snapshot_run_started_timestamp_seconds"
SNAPSHOT_NEXT_DUE_METRIC = "berg_features_snapshot_next_due_timestamp_seconds"
LABEL_STORE_WRITTEN_METRIC = "berg_features_label_store_written_timestamp_seconds"


class DataPlaneBehind(TimeoutError):
    """The data plane did not catch up in time; the message says which stage and group."""


def records_behind(ends: Mapping[Any, int], committed: Mapping[Any, int]) -> int:
    """Records between a group's committed offsets and the partitions' ends (a partition never
    committed counts from offset 0)."""
    return sum(max(0, end - max(0, committed.get(partition, 0))) for partition, end in ends.items())


class DataPlaneProbe:
    """Waits until every consumer group of each stage has committed up to the end of its input topics.

    Example:
        >>> probe = DataPlaneProbe(stack.kafka_settings, data_plane_stages(use_case))
        >>> produce_events(stack.kafka_settings, slice_of_events)
        >>> probe.wait_until_caught_up(timeout_s=600)
    """

    def __init__(
        self,
        settings: KafkaSettings,
        stages: Sequence[Sequence[str]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stages = [tuple(stage) for stage in stages]
        self._clock = clock
        security = client_security(settings)
        self._admin: Any = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers, client_id="berg-replay", **security
        )
        self._offsets: Any = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, client_id="berg-replay", **security
        )
        self._partitions: dict[tuple[str, ...], list[TopicPartition]] = {}
        self._groups: dict[tuple[str, ...], tuple[str, ...]] = {}

    def _partitions_of(self, stage: tuple[str, ...]) -> list[TopicPartition]:
        if stage not in self._partitions:
            partitions: list[TopicPartition] = []
            for topic in stage:
                found = sorted(self._offsets.partitions_for_topic(topic) or ())
                if not found:
                    raise DataPlaneBehind(f"topic {topic} does not exist: is this the stack's Kafka?")
                partitions.extend(TopicPartition(topic, partition) for partition in found)
            self._partitions[stage] = partitions
        return self._partitions[stage]

    def _discover(self, stage: tuple[str, ...]) -> tuple[str, ...]:
        groups = [str(group["group_id"]) for group in self._admin.list_groups()]
        if not groups:
            return ()
        offsets = self._admin.list_group_offsets(groups)
        return tuple(
            sorted(group for group, committed in offsets.items() if any(tp.topic in stage for tp in committed))
        )

    def groups_of(self, stage: Sequence[str]) -> tuple[str, ...]:
        """The consumer groups with committed offsets on any of ``stage``'s topics (cached once found)."""
        key = tuple(stage)
        if not self._groups.get(key):
            self._groups[key] = self._discover(key)
        return self._groups[key]

    def _behind(self, stage: tuple[str, ...], ends: Mapping[TopicPartition, int]) -> dict[str, int]:
        groups = self.groups_of(stage)
        if not groups:
            return {"(no consumer group has committed on these topics yet)": sum(ends.values())}
        offsets = self._admin.list_group_offsets({group: list(ends) for group in groups})
        return {
            group: records_behind(ends, {tp: meta.offset for tp, meta in offsets.get(group, {}).items()})
            for group in groups
        }

    def wait_until_caught_up(self, timeout_s: float, interval_s: float = 0.05) -> float:
        """Block until every stage has caught up with what was produced before the call; the seconds it took.

        Raises:
            DataPlaneBehind: some group was still behind after ``timeout_s``.
        """
        started = self._clock()
        deadline = started + timeout_s
        for stage in self._stages:
            partitions = self._partitions_of(stage)
            ends: dict[TopicPartition, int] = dict(self._offsets.end_offsets(partitions))
            while True:
                behind = {group: count for group, count in self._behind(stage, ends).items() if count}
                if not behind:
                    break
                if self._clock() > deadline:
                    raise DataPlaneBehind(
                        f"the data plane did not catch up within {timeout_s:.0f}s: on {', '.join(stage)}, "
                        + ", ".join(f"{group} is {count:,} records behind" for group, count in behind.items())
                    )
                time.sleep(interval_s)
        return self._clock() - started

    def close(self) -> None:
        self._admin.close()
        self._offsets.close()


@dataclass(frozen=True)
class SnapshotJobState:
    """What the features service's ``/metrics`` say of its snapshot jobs, taken together over the snapshot views
    (the slowest view's, so a state that covers what was stored covers it for every view)."""

    runs: int
    """Runs that succeeded so far (the fewest of any view)."""
    watermark: datetime | None
    """The event time up to which snapshots are materialized (the earliest of any view; None before the first)."""
    pending_days: int = 0
    """Days of snapshots whose inputs changed and that are not recomputed yet (of all views)."""
    run_started: float = 0.0
    """Wall-clock start of the last successful run (the earliest of any view; 0 before the first), on the
    service's clock."""
    written: float = 0.0
    """Wall-clock end of the service's last label store write (0 before the first), on the same clock."""
    next_due: datetime | None = None
    """No snapshot becomes available before this event time (the earliest of any view; None before the first
    run)."""

    @property
    def covers_what_was_stored(self) -> bool:
        """A run that started after the last label store write has finished, with no day left to recompute."""
        return self.runs > 0 and self.run_started >= self.written and not self.pending_days

    def settled_before(self, moment: datetime) -> bool:
        """No snapshot can have become available before ``moment`` that the job has not served (given that
        everything stored lies before ``moment`` and nothing was stored late since the job last covered it)."""
        return self.next_due is not None and moment < self.next_due and not self.pending_days


def snapshot_job_state(features_url: str, timeout_s: float = 5.0) -> SnapshotJobState | None:
    """The snapshot jobs' state, or None when the features service does not answer."""
    try:
        text = httpx.get(f"{features_url}/metrics", timeout=timeout_s).text
    except httpx.HTTPError:
        return None
    return snapshot_job_state_from(text)


def snapshot_job_state_from(text: str) -> SnapshotJobState:
    """The snapshot jobs' state from a ``/metrics`` exposition: per metric, the slowest view's value."""
    per_view = (
        SNAPSHOT_WATERMARK_METRIC,
        SNAPSHOT_PENDING_METRIC,
        SNAPSHOT_RUN_STARTED_METRIC,
        SNAPSHOT_NEXT_DUE_METRIC,
    )
    values: dict[str, dict[str, float]] = {name: {} for name in (*per_view, SNAPSHOT_RUNS_METRIC)}
    written = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            view = sample.labels.get("view", "")
            if sample.name == SNAPSHOT_RUNS_METRIC and sample.labels.get("outcome") == "ok":
                values[SNAPSHOT_RUNS_METRIC][view] = sample.value
            elif sample.name in per_view:
                values[sample.name][view] = sample.value
            elif sample.name == LABEL_STORE_WRITTEN_METRIC:
                written = sample.value
    views = {view for by_view in values.values() for view in by_view}

    def slowest(name: str) -> float:
        # A view without the sample has not got there: 0.
        return min((values[name].get(view, 0.0) for view in views), default=0.0)

    watermark, next_due = slowest(SNAPSHOT_WATERMARK_METRIC), slowest(SNAPSHOT_NEXT_DUE_METRIC)
    return SnapshotJobState(
        int(slowest(SNAPSHOT_RUNS_METRIC)),
        datetime.fromtimestamp(watermark, UTC) if watermark else None,
        int(sum(values[SNAPSHOT_PENDING_METRIC].values())),
        run_started=slowest(SNAPSHOT_RUN_STARTED_METRIC),
        written=written,
        next_due=datetime.fromtimestamp(next_due, UTC) if next_due else None,
    )


def wait_for_snapshot_job(features_url: str, timeout_s: float, *, interval_s: float = 0.1) -> SnapshotJobState:
    """Block until the snapshot jobs cover everything the features service has stored (call it once the
    data plane has caught up: :attr:`SnapshotJobState.covers_what_was_stored`); their state then.

    Raises:
        DataPlaneBehind: it did not within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        state = snapshot_job_state(features_url)
        if state is not None and state.covers_what_was_stored:
            return state
        if time.monotonic() > deadline:
            raise DataPlaneBehind(
                f"the features service's snapshot jobs did not run on everything stored, with no pending day, "
                f"within {timeout_s:.0f}s (last state: {state}; {features_url}/metrics: "
                f"{SNAPSHOT_RUN_STARTED_METRIC}, {LABEL_STORE_WRITTEN_METRIC}, {SNAPSHOT_PENDING_METRIC})"
            )
        time.sleep(interval_s)


def wait_for_settled_snapshots(features_url: str, scoring_from: datetime, timeout_s: float) -> SnapshotJobState:
    """Block until serving's snapshots are the ones training joins for events from ``scoring_from``
    on (call it once the data plane has caught up, with nothing stored late since the last wait): at once
    when no snapshot can have become available by then, else :func:`wait_for_snapshot_job`.

    Raises:
        DataPlaneBehind: the job did not cover what was stored within ``timeout_s``.
    """
    state = snapshot_job_state(features_url)
    if state is not None and state.settled_before(scoring_from):
        return state
    return wait_for_snapshot_job(features_url, timeout_s)
