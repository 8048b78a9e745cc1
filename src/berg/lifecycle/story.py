"""The lifecycle demo, act by act, on the running local stack.

1. History: months of normal traffic through ingestion, validation and features.
2. The first model: a manual run through the retraining controller trains,
   evaluates and promotes ``v0001``; serving loads it.
3. Drift: the scenario begins; every transaction is scored by serving (the
   prediction log feeds monitoring) while it also goes to Kafka; labels follow.
4. The loop closes by itself: monitoring measures the drift, Prometheus fires,
   Alertmanager calls the controller, the pipeline trains a challenger against
   champion and baseline, the gate promotes it, serving swaps. Live traffic (the
   days after the drift) is scored all along and goes on to Kafka, so the swap
   happens under load and every answer says which version gave it.
5. After: the rest of that traffic, then its labels to Kafka; monitoring picks up
   the new version, and the loop starts over.

Each act waits for a condition with a timeout (never a fixed sleep) and records
when it happened, for the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from berg.contracts.alerts import RETRAINING_ALERTS
from berg.kafka.producer import open_producer
from berg.lifecycle.live import LiveTally, LiveTraffic
from berg.lifecycle.probes import ControllerClient, PrometheusClient, served_version
from berg.lifecycle.timeline import Timeline, plan_timeline
from berg.problem.card import load_problem_card
from berg.registry import ModelRegistry
from berg.simulator.events import SimulatedEvent
from berg.simulator.generator import SimulationConfig, Simulator
from berg.simulator.producer import RecordSender, produce_events, send_events
from berg.simulator.scenarios import ScenarioName, make_scenario
from berg.simulator.scoring import ScoringTally, TransactionScorer
from berg.stack.local import LocalStack

__all__ = ["LIFECYCLE_SEED", "Moment", "StoryError", "StoryOptions", "StoryOutcome", "tell_story"]

LIFECYCLE_SEED = 7
"""The simulator seed ``berg demo`` uses on a fresh stack: with the timeline anchored to a midnight, the
same traffic every time, whose challenger the gate promotes (tests/e2e/test_demo_lifecycle.py)."""


class StoryError(RuntimeError):
    """An act did not happen in time; the message says which and where to look."""


@dataclass(frozen=True)
class StoryOptions:
    scenario: ScenarioName = "fraud_wave"
    users: int = 500
    merchants: int = 100
    seed: int = LIFECYCLE_SEED
    window_days: float = 14.0
    """Training window of both runs (the controller's local runs use the stack's setting; keep them equal)."""
    after_days: float = 2.0
    score_batch: int = 32
    live_batch: int = 8
    """Transactions per call of the live traffic that goes on while the loop closes."""
    live_span_s: float = 600.0
    """Wall time the live traffic is spread over (it hurries once the gate has decided and serving followed)."""
    act_timeout_s: float = 600.0
    model: str = "fraud"


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
    live: LiveTally | None = None
    """The traffic scored while the loop closed, in order: which version answered, and any failure."""
    triggers: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def mark(self, what: str) -> Moment:
        moment = Moment(what, datetime.now(UTC))
        self.moments.append(moment)
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
    card = load_problem_card()
    now = datetime.now(UTC)
    timeline = plan_timeline(
        now,
        window_days=options.window_days,
        horizon_days=card.target.label_horizon_days,
        after_days=options.after_days,
    )
    outcome = StoryOutcome(timeline, now)
    host, ports = stack.settings.host, stack.settings.ports
    serving_url = f"http://{host}:{ports.serving}"
    score_url = f"{serving_url}/v1/models/{options.model}:predict"
    controller = ControllerClient(
        f"http://{host}:{ports.controller}", stack.layout.controller_token.read_text().strip()
    )
    prometheus = PrometheusClient(f"http://{host}:{ports.prometheus}")
    registry = ModelRegistry(stack.settings.model_registry_uri)
    config = SimulationConfig(
        start=timeline.history_start,
        scenario=make_scenario(options.scenario, timeline.onset),
        seed=options.seed,
        users=options.users,
        merchants=options.merchants,
    )
    segments = _Segments(Simulator(config).events())
    try:
        _history(stack, segments, timeline, outcome, console)
        _first_model(controller, registry, serving_url, options, outcome, console)
        outcome.drift_tally = _scored_segment(
            stack,
            segments,
            timeline.drift_end,
            score_url,
            options,
            console,
            f"{options.scenario} from {timeline.onset:%Y-%m-%d}",
            on_scoring=lambda: outcome.mark("serving sees the drift"),
        )
        outcome.mark("drift segment sent")
        after = list(segments.until(timeline.end))
        transactions = [event for event in after if event.kind == "transaction"]
        held_back = [event for event in after if event.kind != "transaction"]
        producer = open_producer(stack.kafka_settings)
        try:
            live = _live_traffic(transactions, score_url, options, producer)
            live.start()
            try:
                _loop_closes(controller, prometheus, registry, serving_url, options, outcome, console)
            finally:
                with console.status("Act 5: the rest of the live traffic"):
                    outcome.live = live.finish()
        finally:
            producer.close()
        outcome.mark("live traffic scored")
        console.print(f"[green]Act 5[/] live traffic while the loop closed: {outcome.live.describe()}")
        if outcome.live.failed:
            raise StoryError(f"{outcome.live.failed} live scoring calls failed: {outcome.live.errors}")
        with console.status(f"Act 5: {len(held_back):,} labels of the days after the drift to Kafka"):
            produce_events(stack.kafka_settings, held_back)
        outcome.mark("after segment sent")
        if outcome.new_version is not None:
            _monitoring_follows(prometheus, options.model, outcome.new_version, console)
            outcome.mark("monitoring watches the challenger")
        outcome.triggers = controller.triggers(options.model)
        outcome.runs = controller.runs(options.model)
    finally:
        controller.close()
        prometheus.close()
    return outcome


def _monitoring_follows(prometheus: PrometheusClient, model: str, version: str, console: Console) -> None:
    """The loop starts over: wait until Prometheus has scraped monitoring's count of the new version's
    predictions twice (a series the report can draw)."""
    series = f'berg_monitoring_predictions_total{{model="{model}",version="{version}"}}'
    counted = f"count_over_time({series}[2m]) >= 2"
    with console.status(f"Act 5: monitoring picks up {version}'s predictions"):
        _wait(lambda: prometheus.query(counted), 120, f"monitoring to count {version}'s predictions", interval_s=2)
    console.print(f"[green]Act 5[/] monitoring now watches {version}: drift and quality against its own reference")


def _live_traffic(
    transactions: list[SimulatedEvent], score_url: str, options: StoryOptions, producer: RecordSender
) -> LiveTraffic:
    """The days after the drift as a paced stream of scoring calls, each batch's records to Kafka once scored
    (as a payment app would), so the online features stay current.

    Their labels are held back until the loop has closed: training windows end a horizon before the older
    of the newest transaction and the newest label, so with no new label the retraining run's window does
    not move while live transactions arrive, and the challenger is the same every run.
    """
    calls = max(1, -(-len(transactions) // options.live_batch))
    return LiveTraffic(
        score_url,
        [event.value for event in transactions],
        batch=options.live_batch,
        interval_s=options.live_span_s / calls,
        after_call=lambda start, stop: send_events(producer, transactions[start:stop]),
    )


def _history(
    stack: LocalStack, segments: _Segments, timeline: Timeline, outcome: StoryOutcome, console: Console
) -> None:
    events = list(segments.until(timeline.onset))
    days = (timeline.onset - timeline.history_start).days
    _stored(stack, events, console, f"Act 1: {days} days of normal traffic")
    transactions = sum(e.kind == "transaction" for e in events)
    console.print(f"[green]Act 1[/] history in: {transactions:,} transactions, {days} days of event time")
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
        champion = registry.resolve(options.model, "production")
        if champion is None:
            raise StoryError(f"the first run registered {finished.get('result_version')} but did not promote it")
        outcome.first_version = champion.version
        outcome.mark("first model promoted")
        console.print(f"[green]Act 2[/] {options.model} {champion.version} trained, evaluated and promoted")
    version = outcome.first_version
    with console.status(f"Act 2: serving loads {version}"):
        _wait(lambda: served_version(serving_url) == version, 120, f"serving to load {version}")
    outcome.mark("serving the first model")


def _scored_segment(
    stack: LocalStack,
    segments: _Segments,
    end: datetime,
    score_url: str,
    options: StoryOptions,
    console: Console,
    what: str,
    *,
    on_scoring: Callable[[], object] = lambda: None,
) -> ScoringTally:
    """Send a segment to Kafka, wait until the data plane has stored it, then have serving score it.

    A replay of weeks in minutes would otherwise race the data plane: the alert that drift causes starts
    a pipeline run within minutes, and the run must find the whole segment (and its labels) in the label
    store. So the records go first, and serving scores them afterwards, with the online features as of
    the segment's end: the price of the replay.
    """
    events = list(segments.until(end))
    transactions = [e for e in events if e.kind == "transaction"]
    _stored(stack, events, console, f"Traffic {what}")
    scorer = TransactionScorer(score_url, concurrency=4, batch=options.score_batch)
    try:
        with console.status(f"Traffic {what}: {len(transactions):,} transactions scored by serving"):
            on_scoring()
            for transaction in transactions:
                scorer.submit(transaction.value)
    finally:
        tally = scorer.close()
    versions = ", ".join(f"{version}: {count:,}" for version, count in sorted(tally.by_version.items()))
    console.print(
        f"[green]Traffic {what}[/]: {tally.scored:,} transactions scored ({versions}); "
        f"{tally.failed} failed calls; p99 {tally.latency_quantile(0.99) * 1000:.0f} ms per call "
        f"of {options.score_batch}"
    )
    if tally.failed:
        raise StoryError(f"{tally.failed} scoring calls failed: {tally.errors}")
    return tally


def _stored(stack: LocalStack, events: list[SimulatedEvent], console: Console, what: str) -> None:
    """Produce ``events`` and wait until the features service has stored every transaction among them."""
    from berg.features.showcase import wait_for_label_store

    transactions = [str(e.truth.transaction_id) for e in events if e.kind == "transaction"]
    with console.status(f"{what}: {len(transactions):,} transactions to Kafka"):
        produce_events(stack.kafka_settings, events)
    with console.status(f"{what}: ingestion -> validation -> features") as status:
        stored = wait_for_label_store(
            stack.layout.root,
            transactions,
            1800,
            lambda held: status.update(f"{what}: features stored {held:,}/{len(transactions):,} transactions"),
        )
    if not stored:
        raise StoryError(f"the features service did not store {what}; see {stack.layout.logs / 'features.log'}")


def _loop_closes(
    controller: ControllerClient,
    prometheus: PrometheusClient,
    registry: ModelRegistry,
    serving_url: str,
    options: StoryOptions,
    outcome: StoryOutcome,
    console: Console,
) -> None:
    model = options.model
    retraining = "|".join(RETRAINING_ALERTS)
    firing = f'ALERTS{{alertstate="firing",model="{model}",alertname=~"{retraining}"}}'
    with console.status("Act 4: monitoring measures drift; waiting for Prometheus to fire (the rule's for: 2m)"):
        alerts = _wait(lambda: prometheus.query(firing), options.act_timeout_s, "a retraining alert", interval_s=2)
    names = sorted({alert["metric"]["alertname"] for alert in alerts})
    outcome.mark("alert firing")
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
    production = registry.resolve(model, "production")
    latest = registry.versions(model)[-1]
    outcome.decision = str(latest.params.get("decision", ""))
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
