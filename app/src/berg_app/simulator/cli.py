"""``berg simulate``: send a use case's simulated traffic (scored events, labels, malformed records) to Kafka.

The traffic is the use case's own (``UseCase.simulator``, :mod:`berg.simulator.traffic`): the command
knows its scenarios and malformed classes only through it. Simulated event times lie in the past and
never pass the wall-clock time of the run: by default the simulation starts early enough that the asked
number of scored records ends before now, and the stream is cut at now in any case, so the validation
service never takes a valid record for one from the future.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from kafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from berg.settings import KafkaSettings, load_settings
from berg.simulator.traffic import TrafficPlan, TrafficSimulator
from berg.usecase import UseCase, resolve_use_case_or_exit
from berg_app.simulator.bounds import bounded
from berg_app.simulator.producer import ProductionCounts, produce_events
from berg_app.simulator.scoring import Scorer, ScoringTally, scored_while_sent
from berg_app.stack.probes import port_open
from berg_app.stack.settings import StackSettings

__all__ = ["SimulationRun", "checked_scenario", "parse_event_time", "plan_run", "simulate", "simulator_of"]

console = Console()

SPAN_MARGIN = 1.25
"""The default start lies this many expected spans before now (plus :data:`SPAN_SLACK`)..."""
SPAN_SLACK = timedelta(hours=1)
"""...so that the random span of the run almost never reaches now."""


def parse_event_time(text: str, option: str) -> datetime:
    """An ISO 8601 time; one without a zone is taken as UTC.

    Raises:
        typer.BadParameter: the text is not an ISO 8601 time.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=option) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def simulator_of(use_case: UseCase) -> TrafficSimulator:
    """The use case's simulator.

    Raises:
        SystemExit: the use case brings none (one line naming it).
    """
    if use_case.simulator is None:
        raise SystemExit(f"use case {use_case.name!r} brings no simulator (UseCase.simulator): nothing to simulate")
    return use_case.simulator


def checked_scenario(use_case: UseCase, scenario: str) -> str:
    """``scenario``, when the use case's simulator plays it.

    Raises:
        SystemExit: it does not (one line naming the ones it plays).
    """
    known = simulator_of(use_case).scenarios
    if scenario not in known:
        raise SystemExit(
            f"--scenario: {scenario!r} is no scenario of use case {use_case.name!r}; its simulator plays "
            + ", ".join(known)
        )
    return scenario


@dataclass(frozen=True, slots=True)
class SimulationRun:
    """What one ``berg simulate`` sends: the plan, and its bounds."""

    plan: TrafficPlan
    scored_events: int
    """Records to send on the scored stream's raw topic (valid and malformed)."""
    until: datetime
    """Wall-clock time of the run; no event time reaches it."""
    expected_span: timedelta


def plan_run(
    simulator: TrafficSimulator,
    *,
    now: datetime,
    scenario: str,
    scored_events: int,
    seed: int,
    start: datetime | None,
    onset: datetime | None,
    malformed_share: float | None,
    population: int | None,
) -> SimulationRun:
    """The run's plan: default start before ``now``, default onset halfway through the expected span.

    Raises:
        ValueError: ``scenario`` is not one of the simulator's (:func:`checked_scenario` says so first).
    """
    if scenario not in simulator.scenarios:
        raise ValueError(f"{scenario!r} is no scenario of this simulator; known: {', '.join(simulator.scenarios)}")
    span = simulator.expected_span(TrafficPlan(start=now, seed=seed, population=population), scored_events)
    first = start if start is not None else now - span * SPAN_MARGIN - SPAN_SLACK
    plan = TrafficPlan(
        start=first,
        scenario=scenario,
        onset=None if scenario == "baseline" else onset or first + span / 2,
        seed=seed,
        population=population,
        malformed_share=malformed_share,
        # A future timestamp must lie in the future of the run's wall time, not only of its event time.
        future_reference=now,
    )
    return SimulationRun(plan, scored_events, now, span)


def _summary(counts: ProductionCounts, run: SimulationRun, simulator: TrafficSimulator) -> Table:
    table = Table(title="berg simulate", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("scored events", str(counts.by_kind["scored"]))
    table.add_row("  of which positive", str(counts.positives))
    table.add_row("labels", str(counts.by_kind["label"]))
    table.add_row("malformed", str(counts.by_kind["malformed"]))
    for name, stage in simulator.malformed_classes.items():
        if counts.by_malformed_class[name]:
            table.add_row(f"  {name} ({stage})", str(counts.by_malformed_class[name]))
    for name, refused in sorted(counts.refused_too_large.items()):
        table.add_row(f"refused by Kafka for size: {name}", str(refused))
    for topic, count in sorted(counts.by_topic.items()):
        table.add_row(f"on {topic}", str(count))
    if counts.first_event_time is not None and counts.last_event_time is not None:
        table.add_row(
            "event time", f"{counts.first_event_time:%Y-%m-%d %H:%M} .. {counts.last_event_time:%Y-%m-%d %H:%M}"
        )
    if run.plan.onset is not None:
        table.add_row(f"{run.plan.scenario} from", f"{run.plan.onset:%Y-%m-%d %H:%M}")
    return table


def _scoring_summary(tally: ScoringTally, url: str) -> Table:
    table = Table(title=f"scored at {url}", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("scoring calls", str(tally.calls))
    table.add_row("events scored", str(tally.scored))
    for status, count in sorted(tally.by_status.items()):
        table.add_row(f"  answered {status}", str(count))
    for decision, count in sorted(tally.by_decision.items()):
        table.add_row(f"decision {decision}", str(count))
    for version, count in sorted(tally.by_version.items()):
        table.add_row(f"model version {version}", str(count))
    table.add_row("scored with default features", str(tally.defaults_used))
    if tally.calls:
        table.add_row(
            "latency p50 / p99",
            f"{tally.latency_quantile(0.5) * 1000:.1f} / {tally.latency_quantile(0.99) * 1000:.1f} ms",
        )
    for example in tally.errors:
        table.add_row("[red]error[/]", example)
    return table


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(1)


def simulate(
    use_case: Annotated[
        str | None,
        typer.Option(
            help="The use case whose traffic to simulate; default: BERG_USE_CASE, else the only one installed."
        ),
    ] = None,
    scenario: Annotated[
        str, typer.Option(help="What changes at the onset: one of the use case simulator's scenarios.")
    ] = "baseline",
    scored_events: Annotated[
        int,
        typer.Option(
            min=1, help="Records to send to the scored stream's raw topic (valid and malformed); labels come on top."
        ),
    ] = 1_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed and options give the same records.")] = 7,
    rate: Annotated[
        float, typer.Option(min=0.0, help="Records per second, all topics together; 0 sends as fast as possible.")
    ] = 0.0,
    start: Annotated[
        str | None,
        typer.Option(help="Event time of the start, ISO 8601 (UTC without a zone). Default: early enough to end now."),
    ] = None,
    onset: Annotated[
        str | None, typer.Option(help="Event time the scenario begins, ISO 8601. Default: halfway through the span.")
    ] = None,
    malformed_share: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Share of malformed scored records (scenario malformed); default: the simulator's."
        ),
    ] = None,
    population: Annotated[
        int | None,
        typer.Option(min=1, help="Subjects that make the traffic (the use case's own: card holders, viewers...)."),
    ] = None,
    score_url: Annotated[
        str | None,
        typer.Option(
            help="Also score each valid scored event here as the application would, e.g. "
            "http://127.0.0.1:8104/v1/models/<use case>:predict (the stack's serving).",
        ),
    ] = None,
    score_concurrency: Annotated[int, typer.Option(min=1, max=64, help="Scoring calls in flight at once.")] = 4,
    score_batch: Annotated[
        int, typer.Option(min=1, max=256, help="Events per scoring call (1: one per decision).")
    ] = 1,
) -> None:
    """Send a use case's synthetic events, delayed labels and malformed records to Kafka, reproducibly by seed."""
    # A bad BERG_* setting propagates: `berg` reports it in one line on stderr.
    stack = load_settings(StackSettings)
    described = resolve_use_case_or_exit(use_case or stack.use_case)
    simulator = simulator_of(described)
    run = plan_run(
        simulator,
        now=datetime.now(UTC),
        scenario=checked_scenario(described, scenario),
        scored_events=scored_events,
        seed=seed,
        start=parse_event_time(start, "--start") if start is not None else None,
        onset=parse_event_time(onset, "--onset") if onset is not None else None,
        malformed_share=malformed_share,
        population=population,
    )
    if score_url is not None and not score_url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{score_url!r} is not an http(s) URL", param_hint="--score-url")
    if not port_open(stack.host, stack.ports.kafka):
        raise _fail(f"no Kafka broker listens on {stack.kafka_bootstrap}. Is the stack up? [bold]uv run berg up[/]")
    kafka = KafkaSettings(bootstrap_servers=stack.kafka_bootstrap, client_id="berg-simulate")
    console.print(
        f"Simulating [bold]{scenario}[/] from {run.plan.start:%Y-%m-%d %H:%M} UTC, about "
        f"{run.expected_span.total_seconds() / 86_400:.1f} days of event time, to Kafka at {kafka.bootstrap_servers}"
    )
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    events = bounded(simulator.events(run.plan), max_scored=scored_events, until=run.until)
    scorer = Scorer(score_url, concurrency=score_concurrency, batch=score_batch) if score_url is not None else None
    if scorer is not None:
        events = scored_while_sent(events, scorer)
    try:
        with progress:
            task = progress.add_task("scored records", total=scored_events)

            def show(counts: ProductionCounts) -> None:
                sent = counts.sent_by_kind
                progress.update(
                    task,
                    completed=sent["scored"] + sent["malformed"],
                    description=f"scored records (+{sent['label']} labels)",
                )

            counts = produce_events(kafka, events, rate_per_s=rate, on_progress=show)
    except KafkaError as error:
        raise _fail(f"Kafka at {kafka.bootstrap_servers} failed: {error!r}") from None
    finally:
        tally = scorer.close() if scorer is not None else None
    console.print(_summary(counts, run, simulator))
    if tally is not None:
        console.print(_scoring_summary(tally, score_url or ""))
    sent = counts.sent_by_kind["scored"] + counts.sent_by_kind["malformed"]
    if sent < scored_events:
        console.print(
            f"[yellow]Event time reached the present after {sent} of {scored_events} scored records;[/] "
            "an earlier --start leaves room for more."
        )
    if tally is not None and tally.failed:
        raise _fail(
            f"{tally.failed} of {tally.calls} scoring calls to {score_url} did not answer 2xx "
            "(examples above); is serving up and ready? [bold]uv run berg status[/]"
        )
