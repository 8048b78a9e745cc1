"""The features service's batch handler: aggregate every streaming view, push to Feast, store labels.

For each micro-batch from the use case's two valid topics (its scored events and
their labels):

1. decode with the topic's contract (a record that fails it is dead-lettered, as
   everywhere);
2. per streaming view, read back from the label store the history of entities the
   view's aggregator forgot (evicted while idle, or not restored after a restart)
   that the batch needs;
3. add each scored event to every view's aggregates, each under the view's own key:
   an event is taken by every view or by none (below); one later than the allowed
   lateness behind its entity's latest in any view is dead-lettered with reason
   ``late_event``; a replay is counted and changes nothing; then compute every
   changed row of every view once;
4. per view, push every changed row to the offline store and, per entity, the newest
   row to the online store through the view's push source (:mod:`berg_features.streamed_view`);
5. append the events and labels to the label store (which notes what arrived, for
   the snapshot jobs), then evict idle entities now that what they hold is stored;
6. return, and the loop commits the offsets.

A crash anywhere before 6 redelivers the batch, so the offsets are committed only
once every view's rows are pushed. State is rebuilt from the label store (step 5's
log), so an event logged before the crash is a replay afterwards, and one not logged
is aggregated again with the same result (its rows are pushed again, identical). A
handler failure rolls the batch's entities of every view back to the label store the
same way before the batch is retried.

Every view or none: the label store holds each scored event once, for all views, and
every view's state is rebuilt from it. So an event counts in all of them or in none:
an event late for one view's entity is refused by all (else a restart would read it
back into the views that refused it), and an event some view already holds is a
replay for all (the views that no longer hold it pruned or evicted it, having taken
it before).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow.dataset as ds
from pydantic import BaseModel

from berg.features.feature_set import StreamingView
from berg.features.label_store import ARRIVAL_TIME, LabelStore
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.decoding import Decoded, RecordRejected, Rejected, decode_contract, split_batch
from berg.kafka.records import RawRecord
from berg_features.aggregates import SECOND, AddResult, Outcome, WindowAggregator, WindowEvent
from berg_features.metrics import FeaturesMetrics
from berg_features.streamed_view import PushTarget, StreamedView, event_from_scored, from_us, rows_frame, to_us

__all__ = ["FeaturesHandler", "Source", "event_from_scored", "joint_outcome", "rows_frame"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """A topic the handler reads, and the contract its records are decoded with."""

    topic: str
    contract: type[BaseModel]


def joint_outcome(outcomes: Iterable[Outcome]) -> Outcome:
    """What happens to a scored event, from what each view's aggregator would do with it: a replay if any
    view holds it, else late if any view refuses it, else accepted by all (see the module docstring)."""
    outcomes = set(outcomes)
    for outcome in (Outcome.DUPLICATE, Outcome.LATE):
        if outcome in outcomes:
            return outcome
    return Outcome.ACCEPTED


class FeaturesHandler:
    """See the module docstring.

    Args:
        store: where the rows are pushed (Feast's ``FeatureStore``).
        label_store: the log of scored events and labels; every view's state is rebuilt from it.
        views: each streaming view the use case declares, with the aggregator that computes it.
        dead_letters: where refused records go.
        metrics: the service's metrics; each view gets its series.
        scored: the scored events' topic and contract.
        labels: the labels' topic and contract.
        clock: the created timestamp of the rows pushed.
        eviction_interval_s: wall-clock seconds between passes that drop idle entities.
        on_stored: called after each write to the label store (nudges the snapshot jobs).
    """

    def __init__(
        self,
        store: PushTarget,
        label_store: LabelStore,
        views: Sequence[tuple[StreamingView, WindowAggregator]],
        dead_letters: DeadLetterPublisher,
        metrics: FeaturesMetrics,
        *,
        scored: Source,
        labels: Source,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        eviction_interval_s: float = 60.0,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        if not views:
            raise ValueError("the features handler needs at least one streaming view")
        self._views = tuple(
            StreamedView(view, aggregator, metrics.streaming_view(view.name)) for view, aggregator in views
        )
        self._scored = scored
        self._label_source = labels
        self._store = store
        self._labels = label_store
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._clock = clock
        self._eviction_interval_s = eviction_interval_s
        self._on_stored = on_stored
        self._next_eviction = time.monotonic() + eviction_interval_s
        self._unrestored: set[int] = set()
        """Assigned partitions of the scored topic whose entities are not restored yet."""
        self._scored_clock: datetime | None = None
        """The newest event time of the scored events stored (read back once from the label store): the labels
        stored now arrive at it (:data:`~berg.features.label_store.ARRIVAL_TIME`)."""

    def __call__(self, records: Sequence[RawRecord]) -> None:
        self._restore_assigned()
        self._reload_pending()
        good, rejected = split_batch(records, self.decode)
        scored = [item for item in good if item.record.topic == self._scored.topic]
        labels = [item for item in good if item.record.topic == self._label_source.topic]
        # Per view, what it reads of each scored event: events[v][i] is view v's of scored[i].
        events = [[view.event_of(item.value) for item in scored] for view in self._views]
        try:
            for view, view_events in zip(self._views, events, strict=True):
                self._read_back_history(view, view_events)
            accepted, late = self._accept(scored, events)
            created = self._clock()
            for view in self._views:
                # Every row the batch changed, computed once (a late event changes the rows after it).
                view.push(self._store, {(row.key, row.at_us): row for row in view.aggregator.flush()}.values(), created)
            self._store_events(accepted, labels)
        except Exception:
            # The batch will be retried: its entities, in every view, go back to what the label store
            # knows before anything else is aggregated (the next call does it first).
            for view, view_events in zip(self._views, events, strict=True):
                view.forget_for_reload({event.key for event in view_events})
            raise
        self._dead_letters.publish([*rejected, *late])
        self._evict_idle()
        for view in self._views:
            view.metrics.entities_in_state.set(view.aggregator.entities)

    def decode(self, record: RawRecord) -> BaseModel:
        """Decode one record against its topic's contract."""
        for source in (self._scored, self._label_source):
            if record.topic == source.topic:
                return decode_contract(source.contract, record)
        raise RecordRejected("unknown_topic", f"features does not read {record.topic}")

    def _read_back_history(self, view: StreamedView, events: Sequence[WindowEvent]) -> None:
        # Entities the view's aggregator forgot (idle, or older than what a restart read back) whose
        # history this batch needs: one read of the label store for all of them.
        request = view.aggregator.history_needed(events)
        if request is None:
            return
        frame = self._labels.read(
            self._labels.scored,
            start=from_us(request.start_us),
            end=from_us(request.end_us),
            filter_expression=ds.field(view.key).isin(sorted(request.keys)),
        )
        view.metrics.history_reads.inc()
        view.metrics.restored_events.inc(view.aggregator.load_history(request, view.events_of_log(frame)))
        view.note_restored(frame, self._store)

    def _accept(
        self, scored: Sequence[Decoded[BaseModel]], events: Sequence[Sequence[WindowEvent]]
    ) -> tuple[list[Decoded[BaseModel]], list[Rejected]]:
        accepted: list[Decoded[BaseModel]] = []
        late: list[Rejected] = []
        for index, item in enumerate(scored):
            mine = [view_events[index] for view_events in events]
            verdicts = [view.aggregator.outcome_of(event) for view, event in zip(self._views, mine, strict=True)]
            for view, verdict in zip(self._views, verdicts, strict=True):
                view.metrics.lateness_seconds.observe(verdict.lateness_us / SECOND)
            outcome = joint_outcome(verdict.outcome for verdict in verdicts)
            self._metrics.events.labels("scored", outcome.value).inc()
            if outcome is Outcome.LATE:
                late.append(Rejected(item.record, RecordRejected("late_event", self._late_message(mine, verdicts))))
            elif outcome is Outcome.ACCEPTED:
                for view, event in zip(self._views, mine, strict=True):
                    view.aggregator.accept(event)
                    view.note_accepted(event.key, item.record.partition)
                accepted.append(item)
        return accepted, late

    def _late_message(self, events: Sequence[WindowEvent], verdicts: Sequence[AddResult]) -> str:
        view, event, verdict = next(
            (view, event, verdict)
            for view, event, verdict in zip(self._views, events, verdicts, strict=True)
            if verdict.outcome is Outcome.LATE
        )
        return (
            f"event time {from_us(event.event_us).isoformat()} is {verdict.lateness_us / SECOND:.0f}s behind "
            f"{view.key} {event.key}'s latest event in view {view.name}; allowed lateness is "
            f"{view.aggregator.allowed_lateness_us / SECOND:.0f}s"
        )

    def _store_events(self, scored: Sequence[Decoded[BaseModel]], labels: Sequence[Decoded[BaseModel]]) -> None:
        if self._scored_clock is None:
            self._scored_clock = self._labels.latest_event_time(self._labels.scored)
        # Labels arrive on the clock as it was before this batch: a batch's own scored events may reach past them.
        arrived = self._scored_clock
        for item in scored:
            at: datetime = item.value.event_time  # type: ignore[attr-defined]
            self._scored_clock = at if self._scored_clock is None else max(self._scored_clock, at)
        if scored:
            self._labels.append(
                self._labels.scored,
                [
                    {
                        **item.value.model_dump(mode="json"),
                        "event_time": item.value.event_time,  # type: ignore[attr-defined]
                        "source_partition": item.record.partition,
                        "source_offset": item.record.offset,
                    }
                    for item in scored
                ],
            )
            self._metrics.events.labels("scored", "stored").inc(len(scored))
        if labels:
            self._labels.append(
                self._labels.labels,
                [
                    {
                        **item.value.model_dump(mode="json"),
                        "event_time": item.value.event_time,  # type: ignore[attr-defined]
                        # A label is learnt when it is read, on the scored stream's clock: one replayed
                        # or delivered late counts from then on, never from the time it names.
                        ARRIVAL_TIME: arrived,
                    }
                    for item in labels
                ],
            )
            self._metrics.events.labels("label", "stored").inc(len(labels))
        if scored or labels:
            self._metrics.label_store_written.set(time.time())
            self._on_stored()

    # State: rebuilt from the label store's log of scored events.

    def _horizon_start(self) -> datetime | None:
        # An aggregator evicts entities its longest window and twice the lateness behind; a restart
        # reads back as much for the view that reaches furthest, so an event within the lateness of
        # the newest needs no further read in any view.
        latest = self._labels.latest_event_time(self._labels.scored)
        if latest is None:
            return None
        reach = max(view.aggregator.longest_window_us + 2 * view.aggregator.allowed_lateness_us for view in self._views)
        return latest - timedelta(microseconds=reach)

    def _restore(self, views: Sequence[StreamedView], condition: ds.Expression) -> None:
        start = self._horizon_start()
        if start is None:
            return
        frame = self._labels.read(self._labels.scored, start=start, filter_expression=condition)
        for view in views:
            restored = view.aggregator.restore(view.events_of_log(frame), complete_from_us=to_us(start))
            view.metrics.restored_events.inc(restored)
            view.note_restored(frame, self._store)
        log.info("state restored from the label store", extra={"events": len(frame), "views": [v.name for v in views]})

    def _evict_idle(self) -> None:
        # After the label store append: what an evicted entity held is stored, and is read back
        # if it comes back needing it.
        now = time.monotonic()
        if now < self._next_eviction:
            return
        self._next_eviction = now + self._eviction_interval_s
        for view in self._views:
            view.evict_idle()

    def on_assigned(self, partitions: list[tuple[str, int]]) -> None:
        """Load every view's aggregates of the entities on newly assigned partitions of the scored topic.

        Never raises: a listener that fails makes the consumer's poll fail. When the label store or the
        online store cannot be read now, the restore is tried again before each batch, and the batch
        fails (the loop rewinds it and backs off) until it succeeds: nothing is aggregated over a
        partial state."""
        self._unrestored |= {partition for topic, partition in partitions if topic == self._scored.topic}
        try:
            self._restore_assigned()
        except Exception:
            log.warning(
                "restoring the assigned partitions failed; tried again before the next batch",
                extra={"partitions": sorted(self._unrestored)},
                exc_info=True,
            )

    def on_revoked(self, partitions: list[tuple[str, int]]) -> None:
        """Drop the entities of revoked partitions: their new owner carries on, and so may we later."""
        gone = {partition for topic, partition in partitions if topic == self._scored.topic}
        self._unrestored -= gone
        for view in self._views:
            view.on_revoked(gone)

    def _restore_assigned(self) -> None:
        # Raises when a store is unreachable; restoring again is exact (the aggregators skip the events
        # they already hold).
        if self._unrestored:
            self._restore(self._views, ds.field("source_partition").isin(sorted(self._unrestored)))
            self._unrestored.clear()

    def _reload_pending(self) -> None:
        # Raises when the label store is unreachable: the batch is retried, and so is this.
        for view in self._views:
            if view.pending_reload:
                self._restore([view], ds.field(view.key).isin(sorted(view.pending_reload)))
                view.pending_reload.clear()
