"""The lifecycle demo, act by act, on the running local stack.

1. History: months of normal traffic through ingestion, validation and features.
2. The first model: a manual run through the retraining controller trains,
   evaluates and promotes ``v0001``; serving loads it.
3. Drift: the use case simulator's drift scenario begins. The weeks of the drift are
   replayed as the scoring application lives them (:mod:`berg_app.lifecycle.replay`): slice by
   slice of event time, serving scores each event before it goes to Kafka, with the features
   the data plane had stored by then and the snapshot views computed from them,
   never with its future (the prediction log feeds monitoring); labels follow in
   event-time order.
4. The loop closes by itself: monitoring measures the drift, Prometheus fires,
   Alertmanager calls the controller, the pipeline trains a challenger against
   champion and baseline, the gate promotes it, serving swaps. Live traffic (the
   days after the drift) is scored all along, slice by slice in the same way, so
   the swap happens under load and every answer says which version gave it.
5. After: the rest of that traffic (for ``watch_s`` at its pace, or at once), with
   its labels; monitoring picks up the new version, and the loop starts over.

The replay compresses weeks into minutes, and that needs one act of an operator: a
run started by the first alert would find only the first days of the drift stored,
and its label-complete window (a horizon before the newest label) would lie before
the onset. In real time the challenger would wait weeks for its labels too. So the
replay is treated as the backfill it is: the retraining alerts are silenced in
Alertmanager while the drift's weeks are stored (they still fire in Prometheus and
reach Alertmanager), and the silence ends once the data plane holds all of them,
snapshot views included; Alertmanager then delivers the alert, still firing,
and the controller starts the run.

Each act waits for a condition with a timeout (never a fixed sleep) and records
when it happened, for the report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from berg.contracts.alerts import RETRAINING_ALERTS
from berg.kafka.producer import open_producer
from berg.registry import ModelRegistry
from berg.simulator.traffic import SimulatedEvent, TrafficPlan
from berg.usecase import resolve_use_case
from berg_app.lifecycle.dataplane import (
    DataPlaneBehind,
    DataPlaneProbe,
    data_plane_stages,
    wait_for_settled_snapshots,
    wait_for_snapshot_job,
)
from berg_app.lifecycle.live import LiveTally, LiveTraffic
from berg_app.lifecycle.probes import (
    AlertmanagerClient,
    ControllerClient,
    PrometheusClient,
    served_version,
    shadow_predictions_served,
)
from berg_app.lifecycle.replay import ReplayTimings, event_time_slices, replay_scored
from berg_app.lifecycle.rollout_stage import StageOutcome, follow_rollout
from berg_app.lifecycle.shadow_feed import ShadowFeed
from berg_app.lifecycle.timeline import Timeline, plan_timeline
from berg_app.simulator.producer import produce_events, send_events
from berg_app.simulator.scoring import Scorer, ScoringTally
from berg_app.stack.local import LocalStack

__all__ = ["LIFECYCLE_SEED", "Moment", "StoryError", "StoryOptions", "StoryOutcome", "tell_story"]

LIFECYCLE_SEED = 7
"""The simulator seed ``berg demo`` uses on a fresh stack: with the timeline anchored to a midnight, the
same traffic every time, whose challenger the gate promotes (tests/e2e/test_demo_lifecycle.py)."""


class StoryError(RuntimeError):
    """An act did not happen in time; the message says which and where to look."""


@dataclass(frozen=True)
class StoryOptions:
    model: str
    """The registry model the story trains, scores and watches: the use case's name, the model it trains."""
    use_case: str | None = None
    """The use case whose card prices the story (``BERG_USE_CASE``); unset: the only one installed."""
    scenario: str | None = None
    """The simulator's scenario the story plays from the onset on; None: its ``drift_scenario``."""
    population: int | None = None
    """Subjects of the simulated traffic; None: the simulator's default."""
    seed: int = LIFECYCLE_SEED
    window_days: float = 14.0
    """Training window of both runs (the controller's local runs use the stack's setting; keep them equal)."""
    after_days: float = 1.0
    settle_days: float | None = None
    """Days of the drift before the challenger's window starts (see :func:`~berg_app.lifecycle.timeline.plan_timeline`);
    None: the use case's longest feature window (a snapshot view's 30 days, say), so every feature of the
    challenger's training rows describes the new world only, as its own traffic afterwards does."""
    score_batch: int = 32
    drift_slice: timedelta = timedelta(hours=24)
    """Event time per slice of the drift's replay: each is scored with the features stored before it, and
    the snapshot views computed from them (an earlier event of the same key in the same slice is not seen
    yet: weeks replayed in minutes)."""
    live_slice: timedelta = timedelta(hours=1)
    """At most this much event time per slice of the live traffic (the days after the drift), which is
    also cut before any key's second scored event: the key's streaming features exactly as training joins
    them, snapshot views as of the slice's start (one that becomes available inside a slice is served from the next)."""
    live_batch: int = 8
    """Scored events per call of the live traffic that goes on while the loop closes."""
    live_span_s: float = 600.0
    """Wall time the live traffic is spread over (it hurries once the gate has decided and serving followed)."""
    watch_s: float = 0.0
    """After the loop has closed, the rest of the live traffic is spread over this long (0: at once), so
    monitoring and the rules watch the new champion on its own world."""
    act_timeout_s: float = 600.0


@dataclass(frozen=True)
class Moment:
    what: str
    at: datetime


@dataclass
class StoryOutcome:
    timeline: Timeline
    started_at: datetime
    moments: list[Moment] = field(default_factory=list)
    first_version: str | None = None
    challenger: dict[str, Any] | None = None
    """The run the alert started, as the controller reports it."""
    new_version: str | None = None
    """The promoted challenger; None when the gate refused it."""
    decision: str = ""
    """The gate's decision on the challenger, with its reasons."""
    drift_tally: ScoringTally | None = None
    drift_replay: ReplayTimings | None = None
    """What each slice of the drift's replay cost: the data plane's catch-up, the scoring, the production."""
    live: LiveTally | None = None
    """The traffic scored while the loop closed, in order: which version answered, and any failure."""
    watched_drift: dict[str, float] = field(default_factory=dict)
    """The new champion's highest PSI per feature (and ``prediction``) while it was watched (``watch_s``)."""
    triggers: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    rollout: StageOutcome | None = None
    """The challenger's way through the rollout policy's stages, when it had to take one."""

    def mark(self, what: str, at: datetime | None = None) -> Moment:
        """Record a moment (now, or when it happened), keeping the moments in time order."""
        moment = Moment(what, at or datetime.now(UTC))
        later = next((i for i, other in enumerate(self.moments) if other.at > moment.at), len(self.moments))
        self.moments.insert(later, moment)
        return moment

    def at(self, what: str) -> datetime | None:
        return next((m.at for m in self.moments if m.what == what), None)


class _Segments:
    """One simulated stream, cut into consecutive event-time segments."""

    def __init__(self, events: Iterator[SimulatedEvent]) -> None:
        self._events = events
        self._held: SimulatedEvent | None = None

    def until(self, end: datetime) -> Iterator[SimulatedEvent]:
        while True:
            event = self._held if self._held is not None else next(self._events, None)
            self._held = None
            if event is None:
                return
            if event.event_time >= end:
                self._held = event
                return
            yield event


def _wait(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StoryError(f"{what} did not happen within {timeout_s:.0f}s")
        time.sleep(interval_s)


def tell_story(stack: LocalStack, options: StoryOptions, console: Console) -> StoryOutcome:
    """Run every act on the stack (which must be up, with every Berg service); the outcome for the report."""
    use_case = resolve_use_case(options.use_case)
    card = use_case.card
    settle = options.settle_days
    if settle is None:
        settle = use_case.features.longest_window.total_seconds() / 86_400
    now = datetime.now(UTC)
    timeline = plan_timeline(
        now,
        window_days=options.window_days,
        horizon_days=card.target.label_horizon_days,
        after_days=options.after_days,
        settle_days=settle,
    )
    outcome = StoryOutcome(timeline, now)
    host, ports = stack.settings.host, stack.settings.ports
    serving_url = f"http://{host}:{ports.serving}"
    score_url = f"{serving_url}/v1/models/{options.model}:predict"
    features_url = f"http://{host}:{ports.features}"
    controller = ControllerClient(
        f"http://{host}:{ports.controller}", stack.layout.controller_token.read_text().strip()
    )
    prometheus = PrometheusClient(f"http://{host}:{ports.prometheus}")
    alertmanager = AlertmanagerClient(f"http://{host}:{ports.alertmanager}")
    registry = ModelRegistry(stack.settings.model_registry_uri)
    if use_case.simulator is None:
        raise StoryError(f"use case {use_case.name!r} brings no simulator (UseCase.simulator): no story to tell")
    scenario = options.scenario or use_case.simulator.drift_scenario
    options = replace(options, scenario=scenario)  # the acts name it
    plan = TrafficPlan(
        start=timeline.history_start,
        scenario=scenario,
        onset=timeline.onset,
        seed=options.seed,
        population=options.population,
    )
    segments = _Segments(use_case.simulator.events(plan))
    stages = data_plane_stages(use_case)
    probe = DataPlaneProbe(stack.kafka_settings, stages)
    try:
        _history(stack, probe, features_url, segments, timeline, options, outcome, console)
        _first_model(controller, registry, serving_url, options, outcome, console)
        silence = alertmanager.silence(
            {"model": options.model, "alertname": RETRAINING_ALERTS},
            timedelta(seconds=4 * options.act_timeout_s),
            "berg demo: the drift's weeks are replayed in minutes; no retraining run until they are stored",
        )
        console.print(
            "[green]Act 3[/] the replay is a backfill: retraining alerts are silenced in Alertmanager "
            "until the drift's weeks are stored"
        )
        try:
            _drift(stack, probe, features_url, segments, score_url, options, outcome, console)
        finally:
            alertmanager.expire(silence)
        outcome.mark("retraining alerts unsilenced")
        console.print(
            "[green]Act 3[/] the drift is stored; the silence ends, the firing alert goes on to the controller"
        )
        after = list(segments.until(timeline.end))
        outcome.live = _live_and_loop(
            stack,
            stages,
            after,
            score_url,
            features_url,
            options,
            outcome,
            console,
            stack.settings.rollout_shadow_min_predictions,
            lambda: shadow_predictions_served(serving_url),
            lambda feed: _loop_closes(controller, prometheus, registry, serving_url, options, outcome, console, feed),
        )
        outcome.mark("live traffic scored")
        console.print(f"[green]Act 5[/] live traffic: {outcome.live.describe()}")
        if outcome.live.failed:
            raise StoryError(f"{outcome.live.failed} live scoring calls failed: {outcome.live.errors}")
        outcome.mark("after segment sent")
        if outcome.new_version is not None:
            _monitoring_follows(prometheus, options.model, outcome.new_version, console)
            outcome.mark("monitoring watches the challenger")
            watched = outcome.at("watching the new champion")
            if watched is not None:
                outcome.watched_drift = _drift_since(prometheus, options.model, outcome.new_version, watched)
                highest = ", ".join(f"{name} {psi:.3f}" for name, psi in list(outcome.watched_drift.items())[:3])
                console.print(f"[green]Act 5[/] {outcome.new_version}'s own drift while watched, top PSI: {highest}")
        outcome.triggers = controller.triggers(options.model)
        outcome.runs = controller.runs(options.model)
    except DataPlaneBehind as error:
        raise StoryError(f"{error}; see the logs of ingestion, validation and features") from error
    finally:
        probe.close()
        controller.close()
        prometheus.close()
        alertmanager.close()
    return outcome


def _monitoring_follows(prometheus: PrometheusClient, model: str, version: str, console: Console) -> None:
    """The loop starts over: wait until Prometheus has scraped monitoring's count of the new version's
    predictions twice (a series the report can draw)."""
    series = f'berg_monitoring_predictions_total{{model="{model}",version="{version}"}}'
    counted = f"count_over_time({series}[2m]) >= 2"
    with console.status(f"Act 5: monitoring picks up {version}'s predictions"):
        _wait(lambda: prometheus.query(counted), 120, f"monitoring to count {version}'s predictions", interval_s=2)
    console.print(f"[green]Act 5[/] monitoring now watches {version}: drift and quality against its own reference")


def _first_seen(prometheus: PrometheusClient, expression: str, since: datetime | None) -> datetime | None:
    """When ``expression`` first had a sample since ``since`` (to Prometheus' evaluation step); None: now."""
    if since is None:
        return None
    step_s = 5.0
    series = prometheus.query_range(expression, since.timestamp(), datetime.now(UTC).timestamp(), step_s)
    times = [float(t) for each in series for t, _ in each["values"]]
    return datetime.fromtimestamp(min(times), UTC) if times else None


def _drift_since(prometheus: PrometheusClient, model: str, version: str, since: datetime) -> dict[str, float]:
    """The highest PSI of each feature of ``version`` (and of its scores, as ``prediction``) since ``since``,
    highest first: how far its own traffic reads from its training reference."""
    seconds = max(1, int((datetime.now(UTC) - since).total_seconds()))
    selector = f'{{model="{model}",version="{version}"}}'
    found: dict[str, float] = {}
    for series in prometheus.query(f"max_over_time(berg_monitoring_feature_psi{selector}[{seconds}s])"):
        found[str(series["metric"].get("feature"))] = float(series["value"][1])
    for series in prometheus.query(f"max_over_time(berg_monitoring_prediction_psi{selector}[{seconds}s])"):
        found["prediction"] = float(series["value"][1])
    return dict(sorted(found.items(), key=lambda item: -item[1]))


def _live_and_loop(
    stack: LocalStack,
    stages: Sequence[Sequence[str]],
    after: list[SimulatedEvent],
    score_url: str,
    features_url: str,
    options: StoryOptions,
    outcome: StoryOutcome,
    console: Console,
    shadow_needed: int,
    shadow_sent: Callable[[], float | None],
    loop_closes: Callable[[ShadowFeed], None],
) -> LiveTally:
    """The days after the drift as a paced stream of scoring calls while the loop closes, slice by slice:
    each slice is scored once the data plane has stored the slices before it, then goes to Kafka (as a
    the scoring application would); after the loop, the rest of the stream for ``watch_s`` (or at once).

    Labels are held back until the loop has closed: training windows end a horizon before the older of
    the newest scored event and the newest label, so with no new label the retraining run's window does
    not move while live scored events arrive, and the challenger is the same every run. Once the loop has
    closed, the held labels go before the next slice is scored (its snapshot views then include
    them). Then each slice goes on with its labels.

    Each slice waits for the data plane, and, when a snapshot may have become available since
    the last slice, for the snapshot job to have run on what it stored (the stack starts a run soon after
    new data), so its snapshots are the ones training joins as of the slice's start (see
    ``live_slice``).

    While the challenger is in shadow and serving has not yet sent the shadow predictions the stage needs
    (``shadow_needed``; ``shadow_sent`` reads serving's count), the stream goes as fast as that barrier
    allows (:class:`ShadowFeed`).
    """
    slices = list(event_time_slices(after, options.live_slice, one_per_key=True))
    probe = DataPlaneProbe(stack.kafka_settings, stages)  # used by the stream's thread only
    producer = open_producer(stack.kafka_settings)
    holding = threading.Event()
    holding.set()
    held: list[SimulatedEvent] = []

    def catch_up(index: int) -> None:
        released = not holding.is_set() and bool(held)
        if released:
            send_events(producer, held)
            held.clear()
        probe.wait_until_caught_up(options.act_timeout_s)
        if released:  # labels from days back: they change snapshots already computed
            wait_for_snapshot_job(features_url, options.act_timeout_s)
        elif slices[index]:
            wait_for_settled_snapshots(features_url, slices[index][0].event_time, options.act_timeout_s)

    def hand_on(index: int) -> None:
        records = slices[index]
        if holding.is_set():
            held.extend(event for event in records if event.kind == "label")
            send_events(producer, [event for event in records if event.kind != "label"])
        else:
            send_events(producer, [*held, *records])
            held.clear()

    interval_s = options.live_span_s / max(1, len(slices))
    live = LiveTraffic(
        score_url,
        [[event.value for event in records if event.kind == "scored"] for records in slices],
        batch=options.live_batch,
        interval_s=interval_s,
        before_slice=catch_up,
        after_slice=hand_on,
    )
    feed = ShadowFeed(
        needed=shadow_needed,
        sent=shadow_sent,
        hurry=live.hurry,
        resume=lambda: live.pace(interval_s),
    )
    try:
        feed.start()
        live.start()
        try:
            loop_closes(feed)
        finally:
            holding.clear()
            if options.watch_s > 0 and live.slices_left:
                live.pace(options.watch_s / live.slices_left)
                outcome.mark("watching the new champion")
                with console.status(
                    f"Act 5: the rest of the live traffic, {live.slices_left} slices over {options.watch_s:.0f} s"
                ):
                    tally = live.finish(hurry=False)
            else:
                with console.status("Act 5: the rest of the live traffic"):
                    tally = live.finish()
        if held:  # the loop never closed: the stream ended with the labels still held
            send_events(producer, held)
    finally:
        producer.close()
        probe.close()
    return tally


def _stored_and_snapshotted(probe: DataPlaneProbe, features_url: str, timeout_s: float) -> None:
    probe.wait_until_caught_up(timeout_s)
    wait_for_snapshot_job(features_url, timeout_s)


def _caught_up(probe: DataPlaneProbe, features_url: str, what: str, timeout_s: float, console: Console) -> None:
    """Wait until the data plane has stored everything produced so far, and the snapshot job has run on it."""
    with console.status(f"{what}: ingestion -> validation -> features"):
        probe.wait_until_caught_up(timeout_s)
    with console.status(f"{what}: the features service's snapshot views"):
        wait_for_snapshot_job(features_url, timeout_s)


def _history(
    stack: LocalStack,
    probe: DataPlaneProbe,
    features_url: str,
    segments: _Segments,
    timeline: Timeline,
    options: StoryOptions,
    outcome: StoryOutcome,
    console: Console,
) -> None:
    events = list(segments.until(timeline.onset))
    days = (timeline.onset - timeline.history_start).days
    scored = sum(e.kind == "scored" for e in events)
    with console.status(f"Act 1: {days} days of normal traffic, {scored:,} scored events to Kafka"):
        produce_events(stack.kafka_settings, events)
    _caught_up(probe, features_url, f"Act 1: {days} days of normal traffic", options.act_timeout_s, console)
    console.print(f"[green]Act 1[/] history in: {scored:,} scored events, {days} days of event time")
    outcome.mark("history stored")


def _finished(controller: ControllerClient, run_id: str) -> dict[str, Any] | None:
    run = controller.run(run_id)
    return run if run["status"] in ("succeeded", "failed") else None


def _first_model(
    controller: ControllerClient,
    registry: ModelRegistry,
    serving_url: str,
    options: StoryOptions,
    outcome: StoryOutcome,
    console: Console,
) -> None:
    current = registry.resolve(options.model, "production")
    if current is not None:
        console.print(f"[yellow]Act 2[/] {options.model} {current.version} is already in production; keeping it")
        outcome.first_version = current.version
    else:
        run = controller.start_run(options.model, "the demo's first model: nothing in production yet")
        outcome.mark("first run started")
        with console.status(f"Act 2: the controller runs the training pipeline (run {run['id']})"):
            finished = _wait(lambda: _finished(controller, run["id"]), options.act_timeout_s, "the first pipeline run")
        if finished["status"] != "succeeded":
            detail = finished.get("detail")
            raise StoryError(f"the first pipeline run failed: {detail}; its log is under the stack's controller/runs")
        registered = finished.get("result_version")
        if registered and registry.rollout_history(options.model, registered):
            # A candidate under the rollout policy: with no champion to be compared with, the controller
            # promotes it on its next round (a policy with approval waits for a person here).
            try:
                follow_rollout(registry, None, options.model, registered, options.act_timeout_s, console, {}, "Act 2")
            except TimeoutError as error:
                raise StoryError(str(error)) from None
        champion = registry.resolve(options.model, "production")
        if champion is None:
            raise StoryError(f"the first run registered {registered} but did not promote it")
        outcome.first_version = champion.version
        outcome.mark("first model promoted")
        console.print(f"[green]Act 2[/] {options.model} {champion.version} trained, evaluated and promoted")
    version = outcome.first_version
    with console.status(f"Act 2: serving loads {version}"):
        _wait(lambda: served_version(serving_url) == version, 120, f"serving to load {version}")
    outcome.mark("serving the first model")


def _drift(
    stack: LocalStack,
    probe: DataPlaneProbe,
    features_url: str,
    segments: _Segments,
    score_url: str,
    options: StoryOptions,
    outcome: StoryOutcome,
    console: Console,
) -> None:
    """Replay the drift segment slice by slice (:func:`~berg_app.lifecycle.replay.replay_scored`): each slice
    scored once the data plane has stored the ones before it, then produced; then wait until all of it is
    stored, snapshot views included, so the retraining run finds the whole segment."""
    timeline = outcome.timeline
    what = f"{options.scenario} from {timeline.onset:%Y-%m-%d}"
    slices = list(event_time_slices(segments.until(timeline.drift_end), options.drift_slice))
    scored = sum(e.kind == "scored" for records in slices for e in records)
    scorer = Scorer(score_url, concurrency=4, batch=options.score_batch)
    producer = open_producer(stack.kafka_settings)

    def score(records: Sequence[SimulatedEvent]) -> None:
        if outcome.at("serving sees the drift") is None:
            outcome.mark("serving sees the drift")
        for event in records:
            scorer.submit(event.value)
        if scorer.drain().failed:
            raise StoryError(f"{scorer.tally.failed} scoring calls failed: {scorer.tally.errors}")

    try:
        with console.status(f"Act 3: {what}, {len(slices)} slices of {options.drift_slice}") as status:
            outcome.drift_replay = replay_scored(
                slices,
                catch_up=lambda: _stored_and_snapshotted(probe, features_url, options.act_timeout_s),
                score=score,
                produce=lambda records: send_events(producer, records),
                on_slice=lambda timings: status.update(
                    f"Act 3: {what}: slice {timings.slices}/{len(slices)}, "
                    f"{timings.scored:,}/{scored:,} events scored, then sent to Kafka"
                ),
            )
    finally:
        producer.close()
        outcome.drift_tally = scorer.close()
    outcome.mark("drift segment sent")
    tally = outcome.drift_tally
    versions = ", ".join(f"{version}: {count:,}" for version, count in sorted(tally.by_version.items()))
    console.print(
        f"[green]Act 3[/] {what}: {tally.scored:,} events scored ({versions}), each before it went to "
        f"Kafka; {tally.failed} failed calls; {outcome.drift_replay.describe()}"
    )
    _caught_up(probe, features_url, f"Act 3: {what}", options.act_timeout_s, console)
    outcome.mark("drift segment stored")


def _loop_closes(
    controller: ControllerClient,
    prometheus: PrometheusClient,
    registry: ModelRegistry,
    serving_url: str,
    options: StoryOptions,
    outcome: StoryOutcome,
    console: Console,
    feed: ShadowFeed,
) -> None:
    model = options.model
    retraining = "|".join(RETRAINING_ALERTS)
    firing = f'ALERTS{{alertstate="firing",model="{model}",alertname=~"{retraining}"}}'
    with console.status("Act 4: monitoring measures drift; waiting for Prometheus to fire (the rule's for: 2m)"):
        alerts = _wait(lambda: prometheus.query(firing), options.act_timeout_s, "a retraining alert", interval_s=2)
    names = sorted({alert["metric"]["alertname"] for alert in alerts})
    # It may have fired while silenced: the moment is when Prometheus first had it firing.
    outcome.mark("alert firing", _first_seen(prometheus, firing, outcome.at("serving sees the drift")))
    console.print(f"[green]Act 4[/] Prometheus fires {', '.join(names)} for {model}")

    def alert_run() -> dict[str, Any] | None:
        return next((run for run in controller.runs(model) if run["source"] != "manual"), None)

    with console.status("Act 4: Alertmanager calls the controller"):
        run = _wait(alert_run, options.act_timeout_s, "the controller to start a run from the alert", interval_s=2)
    outcome.mark("retraining run started")
    console.print(f"[green]Act 4[/] the controller started run {run['id']} ({run['source']}: {run['reason']})")
    with console.status(f"Act 4: the pipeline trains and judges a challenger (run {run['id']})"):
        finished = _wait(lambda: _finished(controller, run["id"]), options.act_timeout_s, "the retraining run")
    outcome.challenger = finished
    outcome.mark("retraining run finished")
    if finished["status"] != "succeeded":
        raise StoryError(f"the retraining run failed: {finished.get('detail')}; its log is under controller/runs")
    latest = registry.versions(model)[-1]
    outcome.decision = str(latest.params.get("decision", ""))
    if registry.rollout_history(model, latest.version):
        # A candidate under the rollout policy: the controller takes it through its stages (shadow...) first.
        marks: dict[str, datetime] = {}
        try:
            outcome.rollout = follow_rollout(
                registry, prometheus, model, latest.version, options.act_timeout_s, console, marks, on_poll=feed
            )
        except TimeoutError as error:
            raise StoryError(f"{error}; `uv run berg models rollout {model} {latest.version}` shows where") from None
        for action, at in sorted(marks.items(), key=lambda item: item[1]):
            outcome.mark(action.replace("_", " "), at)
    production = registry.resolve(model, "production")
    if production is None or production.version == outcome.first_version:
        # The gate is the point of the loop: a challenger that does not beat the champion stays out.
        outcome.mark("challenger refused")
        console.print(f"[yellow]Act 4[/] {latest.version} was not promoted: {outcome.decision}")
        return
    outcome.new_version = production.version
    outcome.mark("challenger promoted")
    console.print(f"[green]Act 4[/] {production.version} promoted: {outcome.decision}")
    with console.status(f"Act 4: serving swaps to {production.version}"):
        _wait(
            lambda: served_version(serving_url) == production.version, 120, f"serving to swap to {production.version}"
        )
    outcome.mark("serving the challenger")
