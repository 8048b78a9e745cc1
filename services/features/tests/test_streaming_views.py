"""The features handler computes every streaming view of a feature set from the one scored stream.

Two views of different keys and windows (per viewer, per campaign: ``two_views``) are driven through the
handler in micro-batches, with shuffles inside and beyond the lateness, replays, idle entities evicted
and read back, a restart and a failed push. Each view's rows, offline and online, equal its declaration
read literally over the events every view accepted; an event late in one view is dead-lettered and
counted in none.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from services.features.tests.two_views import (
    CAMPAIGN_VIEW,
    IMPRESSIONS,
    START,
    TWO_VIEWS,
    VIEWER_VIEW,
    Driven,
    Impression,
    RecordingStore,
    drive,
    impression,
    oracle_accepts,
    record,
    view_events,
)

from berg.features.feature_set import StreamingView
from berg_features.aggregates import WindowAggregator
from berg_features.metrics import FeaturesMetrics
from berg_features.streamed_view import StreamedView, to_us
from tests.feature_oracle import arrive_shuffled, assert_rows_equal, declared_oracle

pytestmark = pytest.mark.unit

LATENESS = timedelta(hours=1)
VIEW_SETS = {
    "both views": TWO_VIEWS.streaming,
    "the viewer view alone": (VIEWER_VIEW,),
    "the campaign view alone": (CAMPAIGN_VIEW,),
}


@st.composite
def arrivals(draw: st.DrawFn) -> list[Impression]:
    """Impressions of a few viewers and campaigns over days, shuffled locally (some beyond the lateness), with
    replays."""
    count = draw(st.integers(1, 40))
    produced, clock = [], START
    for index in range(count):
        clock += draw(st.sampled_from([timedelta(0), timedelta(seconds=1), timedelta(minutes=20), 2 * LATENESS]))
        clock += draw(st.sampled_from([timedelta(0), timedelta(days=1)]))
        user = draw(st.sampled_from(["u0", "u1", "u2", "u3"]))
        campaign = draw(st.sampled_from(["c1", "c2", "c3"]))
        produced.append(impression(index, clock, user, campaign, bid=draw(st.floats(0.01, 50, allow_nan=False))))
    # The shuffle of tests.feature_oracle, over what one view reads of them, mapped back by event id.
    by_id = {str(event.event_id): event for event in produced}
    order = arrive_shuffled(draw, view_events(VIEWER_VIEW, produced), reach=4, replays=8)
    return [by_id[event.event_id] for event in order]


def deliver(driven: Driven, stream: Sequence[Impression], batch: int, *, first_offset: int = 0) -> None:
    """``stream`` in micro-batches of ``batch``, each record's offset its place in the stream from ``first_offset``."""
    records = [record(event, first_offset + offset) for offset, event in enumerate(stream)]
    for start in range(0, len(records), batch):
        driven.handler(records[start : start + batch])


def assert_views_equal_the_oracle(driven: Driven, views: Sequence[StreamingView], accepted: list[Impression]) -> None:
    """Every view's newest offline row per (entity, event time) and its online value per entity equal the
    declaration read literally over the accepted impressions; there is a row for each and no other."""
    for view in views:
        events = view_events(view, accepted)
        names = set(view.aggregation.feature_names)
        offline = driven.store.offline(view)
        assert set(offline) == {(event.key, event.event_us) for event in events}, view.name
        for (key, at_us), row in offline.items():
            expected = declared_oracle(view.aggregation, events, key, at_us)
            assert_rows_equal({name: row[name] for name in names}, expected, f"{view.name} {key}@{at_us}", names=names)
        latest = {event.key: event.event_us for event in sorted(events)}
        online = driven.store.online(view)
        assert set(online) == set(latest), view.name
        for key, at_us in latest.items():
            expected = declared_oracle(view.aggregation, events, key, at_us)
            values = {name: online[key][name] for name in names}
            assert_rows_equal(values, expected, f"{view.name} online {key}", names=names)


@pytest.mark.parametrize("views", VIEW_SETS.values(), ids=VIEW_SETS.keys())
@settings(max_examples=60, deadline=None)
@given(stream=arrivals(), batch=st.integers(1, 8))
def test_every_views_rows_equal_the_oracle_and_late_events_are_dead_lettered(
    views: tuple[StreamingView, ...], stream: list[Impression], batch: int
) -> None:
    with tempfile.TemporaryDirectory() as root:
        # Idle entities are evicted after every batch, so a batch often reads history back first.
        driven = drive(Path(root), LATENESS, views=views, eviction_interval_s=0)
        driven.handler.on_assigned([(IMPRESSIONS.valid_topic, partition) for partition in range(3)])
        deliver(driven, stream, batch)

        accepted = oracle_accepts(stream, views, LATENESS)
        assert_views_equal_the_oracle(driven, views, accepted)
        assert all(driven.store.online_stamps_increase(view) for view in views)
        stored = driven.label_store.read(driven.label_store.scored)
        assert set(stored["event_id"]) == {str(event.event_id) for event in accepted}
        # Dead letters: every first arrival of an impression no view counted, and no other first arrival.
        first_arrival: dict[str, int] = {}
        for offset, event in enumerate(stream):
            first_arrival.setdefault(str(event.event_id), offset)
        refused = set(first_arrival) - {str(event.event_id) for event in accepted}
        letters = driven.dead_letters()
        assert {envelope.reason for envelope, _ in letters} <= {"late_event"}
        lettered_first = {
            str(event.event_id)
            for envelope, event in letters
            if first_arrival[str(event.event_id)] == envelope.original_offset
        }
        assert lettered_first == refused


@settings(max_examples=50, deadline=None)
@given(stream=arrivals(), batch=st.integers(1, 8), cut=st.integers(0, 40))
def test_after_a_restart_a_redelivered_batch_changes_nothing_and_the_views_carry_on_exactly(
    stream: list[Impression], batch: int, cut: int
) -> None:
    """The first process dies after its sinks and before its commit: the next one rebuilds every view from the
    label store, takes the redelivered batch as replays (nothing pushed) and goes on to the oracle's rows.

    Online, each entity's stamps increase across the restart too: the new process asks the online store
    for the stamp it holds (a correction's is after its row's event time, which the label store does not
    know), so Redis, which skips a row not newer than its own, takes every correction."""
    views = TWO_VIEWS.streaming
    partitions = [(IMPRESSIONS.valid_topic, partition) for partition in range(3)]
    done = min(cut, len(stream) // batch) * batch
    redelivered = stream[max(0, done - batch) : done]
    with tempfile.TemporaryDirectory() as root:
        first = drive(Path(root), LATENESS)
        first.handler.on_assigned(partitions)
        deliver(first, stream[:done], batch)

        second = drive(Path(root), LATENESS, store=first.store)
        second.handler.on_assigned(partitions)
        pushes = second.store.count()
        deliver(second, redelivered, batch, first_offset=done - len(redelivered))
        assert second.store.count() == pushes, "a redelivered batch pushes nothing"
        replays = second.registry.get_sample_value(
            "berg_features_events_total", {"kind": "scored", "outcome": "accepted"}
        )
        assert not replays, "a redelivered batch is accepted by no view"
        deliver(second, stream[done:], batch, first_offset=done)

        assert_views_equal_the_oracle(second, views, oracle_accepts(stream, views, LATENESS))
        assert all(second.store.online_stamps_increase(view) for view in views)


def test_an_online_store_down_at_assignment_holds_every_batch_until_the_restore_succeeds(tmp_path: Path) -> None:
    """After a restart the online store cannot be read while partitions are assigned: the listener does not
    raise (kafka-python would fail the poll with it), the first batch fails while the store is still down (the
    loop rewinds it), and once the store is back the restore runs before the batch: every view exact."""
    views = TWO_VIEWS.streaming
    partitions = [(IMPRESSIONS.valid_topic, partition) for partition in range(3)]
    stream = [impression(i, START + timedelta(minutes=7 * i), f"u{i % 3}", f"c{i % 2}") for i in range(12)]
    first = drive(tmp_path, LATENESS)
    first.handler.on_assigned(partitions)
    deliver(first, stream[:8], batch=4)

    first.store.reads_down = 2  # the assignment's read, then the first batch's
    second = drive(tmp_path, LATENESS, store=first.store)
    second.handler.on_assigned(partitions)
    batch = [record(event, 8 + n) for n, event in enumerate(stream[8:])]
    pushes = second.store.count()
    with pytest.raises(ConnectionError):
        second.handler(batch)
    assert second.store.count() == pushes, "nothing is pushed over a partial state"
    assert len(second.label_store.read(second.label_store.scored)) == 8
    second.handler(batch)

    assert_views_equal_the_oracle(second, views, stream)
    assert all(second.store.online_stamps_increase(view) for view in views)


def test_an_impression_late_for_its_campaign_only_is_dead_lettered_and_counted_in_no_view(tmp_path: Path) -> None:
    """In order for its viewer, 90 minutes behind its campaign's latest: no view takes it, so a restart that
    reads the label store back agrees with the views that refused it."""
    driven = drive(tmp_path, LATENESS)
    on_time = impression(0, START, "u0", "c1")
    other_viewer = impression(1, START + timedelta(hours=2), "u1", "c1")
    late_for_campaign = impression(2, START + timedelta(minutes=30), "u0", "c1")
    deliver(driven, [on_time, other_viewer, late_for_campaign], batch=1)

    [(envelope, lettered)] = driven.dead_letters()
    assert (envelope.reason, lettered.event_id) == ("late_event", late_for_campaign.event_id)
    assert f"campaign_id c1's latest event in view {CAMPAIGN_VIEW.name}" in envelope.error_message
    viewer_rows = driven.store.offline(VIEWER_VIEW)
    assert set(viewer_rows) == {("u0", _us(on_time)), ("u1", _us(other_viewer))}
    assert set(driven.label_store.read(driven.label_store.scored)["event_id"]) == {
        str(on_time.event_id),
        str(other_viewer.event_id),
    }
    assert driven.registry.get_sample_value("berg_features_events_total", {"kind": "scored", "outcome": "late"}) == 1


def test_a_failed_push_of_one_view_fails_the_batch_before_the_log_and_the_retry_is_exact(tmp_path: Path) -> None:
    """The campaign view's push fails after the viewer view's went out: the batch raises (the loop commits
    nothing), nothing is logged, and the retried batch gives both views the oracle's rows."""
    store = RecordingStore(fail={CAMPAIGN_VIEW.push_source: 1})
    driven = drive(tmp_path, LATENESS, store=store)
    batch = [record(impression(i, START + timedelta(minutes=7 * i), f"u{i % 2}", "c1", bid=i + 1), i) for i in range(5)]

    with pytest.raises(ConnectionError):
        driven.handler(batch)
    assert driven.label_store.read(driven.label_store.scored).empty
    driven.handler(batch)

    accepted = [impression(i, START + timedelta(minutes=7 * i), f"u{i % 2}", "c1", bid=i + 1) for i in range(5)]
    assert_views_equal_the_oracle(driven, TWO_VIEWS.streaming, accepted)
    assert len(driven.label_store.read(driven.label_store.scored)) == 5


def test_a_campaign_spread_over_partitions_is_read_back_whole_when_one_of_them_is_revoked(tmp_path: Path) -> None:
    """A view keyed by another field than the record key: its entity's events come from every partition. When
    one partition goes, the entity is forgotten and, since its events keep coming on the others, read back
    from the label store before the next batch."""
    driven = drive(tmp_path, LATENESS)
    partitions = [(IMPRESSIONS.valid_topic, partition) for partition in range(3)]
    driven.handler.on_assigned(partitions)
    spread = [impression(i, START + timedelta(minutes=i), f"u{i}", "c1") for i in range(3)]  # partitions 0, 1, 2
    deliver(driven, spread, batch=3)
    driven.handler.on_revoked([partitions[1]])
    later = impression(3, START + timedelta(minutes=3), "u0", "c1")
    driven.handler([record(later, 3)])

    row = driven.store.offline(CAMPAIGN_VIEW)[("c1", _us(later))]
    assert row["campaign_impressions_30m"] == 4, "the revoked partition's impression counts: it is stored"
    assert_views_equal_the_oracle(driven, TWO_VIEWS.streaming, [*spread, later])


def test_each_views_metrics_carry_its_name(tmp_path: Path) -> None:
    driven = drive(tmp_path, LATENESS)
    deliver(driven, [impression(i, START + timedelta(minutes=i), f"u{i}", "c1") for i in range(3)], batch=3)

    def sample(name: str, view: StreamingView, **labels: str) -> float | None:
        return driven.registry.get_sample_value(name, {"view": view.name, **labels})

    for view, entities in ((VIEWER_VIEW, 3), (CAMPAIGN_VIEW, 1)):
        assert sample("berg_features_rows_pushed_total", view, store="offline") == 3
        assert sample("berg_features_rows_pushed_total", view, store="online") == entities
        assert sample("berg_features_users_in_state", view) == entities
        assert sample("berg_features_lateness_seconds_count", view) == 3


def test_a_view_and_an_aggregator_of_another_view_are_refused() -> None:
    metrics = FeaturesMetrics.register(CollectorRegistry())
    with pytest.raises(ValueError, match="the aggregator computes 'viewer_impressions'"):
        StreamedView(CAMPAIGN_VIEW, WindowAggregator(VIEWER_VIEW.aggregation, 0), metrics.streaming_view("x"))


def _us(event: Impression) -> int:
    return to_us(event.event_time)
