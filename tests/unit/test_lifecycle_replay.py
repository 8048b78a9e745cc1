"""The replay's order of work: wait for the data plane, score, then produce; slices cut on event time."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from berg.simulator.traffic import EventTruth, SimulatedEvent
from berg_app.lifecycle.dataplane import SnapshotJobState, records_behind, snapshot_job_state_from
from berg_app.lifecycle.replay import event_time_slices, replay_scored, slice_boundary
from berg_fraud.simulator.generator import SimulationConfig, simulate

START = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)


def _event(at: datetime, kind: str = "scored", user: bytes = b"u") -> SimulatedEvent:
    truth = EventTruth(scenario="baseline", subject_id=str(uuid.uuid4()), positive=False)
    return SimulatedEvent("t", user, at.isoformat().encode(), (), at, kind, truth)  # type: ignore[arg-type]


def test_slices_are_cut_at_multiples_of_their_length_since_the_epoch() -> None:
    assert slice_boundary(START, timedelta(hours=1)) == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert slice_boundary(datetime(2026, 3, 1, 23, 0, tzinfo=UTC), timedelta(hours=1)) == datetime(
        2026, 3, 2, 0, 0, tzinfo=UTC
    )
    times = [START + timedelta(minutes=m) for m in (0, 10, 29, 30, 31, 200)]
    slices = list(event_time_slices(map(_event, times), timedelta(hours=1)))
    # 22:30, 22:40, 22:59 | 23:00, 23:01 | (00:00 .. 01:00 is empty) 01:50
    assert [[e.event_time for e in s] for s in slices] == [times[:3], times[3:5], times[5:]]
    with pytest.raises(ValueError, match="positive"):
        list(event_time_slices(map(_event, times), timedelta(0)))
    with pytest.raises(ValueError, match="back in event time"):
        list(event_time_slices(map(_event, reversed(times)), timedelta(hours=1)))


def test_one_per_key_ends_a_slice_before_a_keys_second_scored_event() -> None:
    def at(minute: int, user: bytes, kind: str = "scored") -> SimulatedEvent:
        return _event(START + timedelta(minutes=minute), kind, user)

    # 22:30 a, 22:31 b, 22:32 label of a, 22:33 a again | 22:33 a, 22:40 c | 23:00 a (new hour)
    stream = [at(0, b"a"), at(1, b"b"), at(2, b"a", "label"), at(3, b"a"), at(10, b"c"), at(30, b"a")]
    slices = list(event_time_slices(stream, timedelta(hours=1), one_per_key=True))
    assert [[(e.key, e.kind[0]) for e in s] for s in slices] == [
        [(b"a", "s"), (b"b", "s"), (b"a", "l")],
        [(b"a", "s"), (b"c", "s")],
        [(b"a", "s")],
    ]
    # Without it, one slice per hour.
    assert [len(s) for s in event_time_slices(stream, timedelta(hours=1))] == [5, 1]


def test_slices_of_a_simulated_stream_keep_every_record_in_order() -> None:
    config = SimulationConfig(start=START, seed=3, users=40)
    events = list(itertools.islice(simulate(config), 2_000))
    slices = list(event_time_slices(events, timedelta(hours=6)))
    assert [e for s in slices for e in s] == events
    for earlier, later in itertools.pairwise(slices):
        assert slice_boundary(earlier[-1].event_time, timedelta(hours=6)) <= later[0].event_time
    by_user = list(event_time_slices(events, timedelta(hours=6), one_per_key=True))
    assert [e for s in by_user for e in s] == events
    assert len(by_user) > len(slices)
    for records in by_user:
        users = [e.key for e in records if e.kind == "scored"]
        assert len(users) == len(set(users))


def test_each_slice_is_scored_after_the_data_plane_caught_up_and_before_it_is_produced() -> None:
    log: list[tuple[str, tuple[str, ...]]] = []

    def names(records: Sequence[SimulatedEvent]) -> tuple[str, ...]:
        return tuple(f"{e.kind[0]}{e.event_time:%H%M}" for e in records)

    first = [_event(START), _event(START + timedelta(minutes=1), "label")]
    second = [_event(START + timedelta(hours=1)), _event(START + timedelta(hours=1, minutes=5))]
    only_labels = [_event(START + timedelta(hours=2), "label")]
    ticks = itertools.count()
    timings = replay_scored(
        [first, only_labels, second],
        catch_up=lambda: log.append(("catch up", ())),
        score=lambda scored: log.append(("score", names(scored))),
        produce=lambda records: log.append(("produce", names(records))),
        clock=lambda: float(next(ticks)),
    )
    assert log == [
        ("catch up", ()),
        ("score", ("s2230",)),
        ("produce", ("s2230", "l2231")),
        ("catch up", ()),
        ("produce", ("l0030",)),  # nothing to score
        ("catch up", ()),
        ("score", ("s2330", "s2335")),
        ("produce", ("s2330", "s2335")),
    ]
    assert (timings.slices, timings.scored, timings.records) == (3, 3, 5)
    assert timings.catch_up_s == timings.scoring_s == timings.producing_s == [1.0, 1.0, 1.0]
    assert timings.describe().startswith("3 slices, 3 scored events in 9 s: data plane catch-up median 1.00 s")


def test_a_failed_step_ends_the_replay_before_anything_else_is_produced() -> None:
    produced: list[int] = []

    def score(transactions: Sequence[SimulatedEvent]) -> None:
        raise RuntimeError("serving answered 503")

    with pytest.raises(RuntimeError, match="503"):
        replay_scored(
            [[_event(START)], [_event(START + timedelta(hours=1))]],
            catch_up=lambda: None,
            score=score,
            produce=lambda records: produced.append(len(records)),
        )
    assert produced == []


def test_records_behind_counts_what_a_group_has_not_committed() -> None:
    ends = {("t", 0): 10, ("t", 1): 5, ("t", 2): 0}
    assert records_behind(ends, {("t", 0): 10, ("t", 1): 5}) == 0
    assert records_behind(ends, {("t", 0): 7}) == 3 + 5  # partition 1 never committed: all of it
    assert records_behind(ends, {("t", 0): -1, ("t", 1): 6}) == 10  # -1: nothing committed; ahead counts 0


def test_the_merchant_job_covers_what_was_stored_only_after_a_run_that_started_after_the_last_write() -> None:
    before_write = SnapshotJobState(runs=3, watermark=None, run_started=100.0, written=100.5)
    assert not before_write.covers_what_was_stored
    after_write = SnapshotJobState(runs=4, watermark=None, run_started=100.5, written=100.5)
    assert after_write.covers_what_was_stored
    assert not SnapshotJobState(
        runs=4, watermark=None, pending_days=2, run_started=101, written=100
    ).covers_what_was_stored
    assert not SnapshotJobState(runs=0, watermark=None).covers_what_was_stored  # no run yet


def test_a_slice_before_the_next_snapshot_is_due_needs_no_wait_for_the_merchant_job() -> None:
    due = datetime(2026, 3, 1, 13, tzinfo=UTC)  # the 12:00 snapshot, with an hour of lateness
    state = SnapshotJobState(runs=5, watermark=due - timedelta(hours=2), next_due=due)
    assert state.settled_before(due - timedelta(minutes=1))
    assert not state.settled_before(due)  # every partition may have reached it: the 12:00 snapshot may be out
    assert not SnapshotJobState(runs=5, watermark=None, pending_days=1, next_due=due).settled_before(
        due - timedelta(hours=1)
    )
    assert not SnapshotJobState(runs=0, watermark=None).settled_before(due)


def test_the_snapshot_jobs_state_is_the_slowest_views() -> None:
    text = """
# TYPE berg_features_snapshot_runs_total counter
berg_features_snapshot_runs_total{view="a",outcome="ok"} 7.0
berg_features_snapshot_runs_total{view="a",outcome="failed"} 1.0
berg_features_snapshot_runs_total{view="b",outcome="ok"} 3.0
# TYPE berg_features_snapshot_watermark_timestamp_seconds gauge
berg_features_snapshot_watermark_timestamp_seconds{view="a"} 7200.0
berg_features_snapshot_watermark_timestamp_seconds{view="b"} 3600.0
# TYPE berg_features_snapshot_pending_days gauge
berg_features_snapshot_pending_days{view="a"} 1.0
berg_features_snapshot_pending_days{view="b"} 2.0
# TYPE berg_features_snapshot_run_started_timestamp_seconds gauge
berg_features_snapshot_run_started_timestamp_seconds{view="a"} 105.0
berg_features_snapshot_run_started_timestamp_seconds{view="b"} 101.0
# TYPE berg_features_snapshot_next_due_timestamp_seconds gauge
berg_features_snapshot_next_due_timestamp_seconds{view="a"} 10800.0
berg_features_snapshot_next_due_timestamp_seconds{view="b"} 0.0
# TYPE berg_features_label_store_written_timestamp_seconds gauge
berg_features_label_store_written_timestamp_seconds 100.5
"""
    state = snapshot_job_state_from(text)
    assert state == SnapshotJobState(
        runs=3,
        watermark=datetime.fromtimestamp(3600, UTC),
        pending_days=3,
        run_started=101.0,
        written=100.5,
        next_due=None,  # view b has not run to a watermark yet
    )
    assert snapshot_job_state_from("") == SnapshotJobState(runs=0, watermark=None)
