"""``berg simulate``: send simulated card transactions, labels and malformed records to the local stack's Kafka.

Simulated event times lie in the past and never pass the wall-clock time of the
run: by default the simulation starts early enough that the asked number of
transaction records ends before now, and the stream is cut at now in any case,
so the validation service never takes a valid record for one from the future.
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
from berg.simulator.bounds import bounded
from berg.simulator.generator import SimulationConfig, Simulator
from berg.simulator.malformed import MALFORMED_CLASSES, MalformedOptions
from berg.simulator.producer import ProductionCounts, produce_events
from berg.simulator.scenarios import DEFAULT_MALFORMED_SHARE, ScenarioName, make_scenario
from berg.simulator.scoring import ScoringTally, TransactionScorer, scored_while_sent
from berg.stack.probes import port_open
from berg.stack.settings import StackSettings

__all__ = ["SimulationRun", "parse_event_time", "plan_run", "simulate"]

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


@dataclass(frozen=True, slots=True)
class SimulationRun:
    """What one ``berg simulate`` sends: the process, and its bounds."""

    config: SimulationConfig
    transactions: int
    until: datetime
    """Wall-clock time of the run; no event time reaches it."""
    expected_span: timedelta


def plan_run(
    *,
    now: datetime,
    scenario: ScenarioName,
    transactions: int,
    seed: int,
    start: datetime | None,
    onset: datetime | None,
    malformed_share: float,
    users: int,
    merchants: int,
) -> SimulationRun:
    """The run's configuration: default start before ``now``, default onset halfway through the expected span."""
    span = Simulator(SimulationConfig(start=now, seed=seed, users=users, merchants=merchants)).expected_span(
        transactions
    )
    first = start if start is not None else now - span * SPAN_MARGIN - SPAN_SLACK
    config = SimulationConfig(
        start=first,
        scenario=make_scenario(scenario, onset or first + span / 2, malformed_share=malformed_share),
        seed=seed,
        users=users,
        merchants=merchants,
        # A future timestamp must lie in the future of the run's wall time, not only of its event time.
        malformed=MalformedOptions(future_reference=now),
    )
    return SimulationRun(config, transactions, now, span)


def _summary(counts: ProductionCounts, config: SimulationConfig) -> Table:
    table = Table(title="berg simulate", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("transactions", str(counts.by_kind["transaction"]))
    table.add_row("  of which fraud", str(counts.fraud_transactions))
    table.add_row("labels", str(counts.by_kind["label"]))
    table.add_row("malformed", str(counts.by_kind["malformed"]))
    for name in MALFORMED_CLASSES:
        if counts.by_malformed_class[name]:
            table.add_row(f"  {name} ({MALFORMED_CLASSES[name].stage})", str(counts.by_malformed_class[name]))
    for name, refused in sorted(counts.refused_too_large.items()):
        table.add_row(f"refused by Kafka for size: {name}", str(refused))
    for topic, count in sorted(counts.by_topic.items()):
        table.add_row(f"on {topic}", str(count))
    if counts.first_event_time is not None and counts.last_event_time is not None:
        table.add_row(
            "event time", f"{counts.first_event_time:%Y-%m-%d %H:%M} .. {counts.last_event_time:%Y-%m-%d %H:%M}"
        )
    if config.scenario.onset is not None:
        table.add_row(f"{config.scenario.name} from", f"{config.scenario.onset:%Y-%m-%d %H:%M}")
    return table


def _scoring_summary(tally: ScoringTally, url: str) -> Table:
    table = Table(title=f"scored at {url}", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("scoring calls", str(tally.calls))
    table.add_row("transactions scored", str(tally.scored))
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
    scenario: Annotated[ScenarioName, typer.Option(help="What changes at the onset.")] = "baseline",
    transactions: Annotated[
        int, typer.Option(min=1, help="Records to send to transactions.raw (valid and malformed); labels come on top.")
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
        float, typer.Option(min=0.0, max=1.0, help="Share of malformed transaction records (scenario malformed).")
    ] = DEFAULT_MALFORMED_SHARE,
    users: Annotated[int, typer.Option(min=1, help="Card holders.")] = 500,
    merchants: Annotated[int, typer.Option(min=1, help="Merchants.")] = 100,
    score_url: Annotated[
        str | None,
        typer.Option(
            help="Also score each valid transaction here as the payment app would, e.g. "
            "http://127.0.0.1:8104/v1/models/fraud:predict (the stack's serving).",
        ),
    ] = None,
    score_concurrency: Annotated[int, typer.Option(min=1, max=64, help="Scoring calls in flight at once.")] = 4,
    score_batch: Annotated[
        int, typer.Option(min=1, max=256, help="Transactions per scoring call (1: one per authorisation).")
    ] = 1,
) -> None:
    """Send synthetic card transactions, delayed labels and malformed records to Kafka, reproducibly by seed."""
    # A bad BERG_* setting propagates: `berg` reports it in one line on stderr.
    stack = load_settings(StackSettings)
    if not port_open(stack.host, stack.ports.kafka):
        raise _fail(f"no Kafka broker listens on {stack.kafka_bootstrap}. Is the stack up? [bold]uv run berg up[/]")
    run = plan_run(
        now=datetime.now(UTC),
        scenario=scenario,
        transactions=transactions,
        seed=seed,
        start=parse_event_time(start, "--start") if start is not None else None,
        onset=parse_event_time(onset, "--onset") if onset is not None else None,
        malformed_share=malformed_share,
        users=users,
        merchants=merchants,
    )
    if score_url is not None and not score_url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{score_url!r} is not an http(s) URL", param_hint="--score-url")
    kafka = KafkaSettings(bootstrap_servers=stack.kafka_bootstrap, client_id="berg-simulate")
    console.print(
        f"Simulating [bold]{scenario}[/] from {run.config.start:%Y-%m-%d %H:%M} UTC, about "
        f"{run.expected_span.total_seconds() / 86_400:.1f} days of event time, to Kafka at {kafka.bootstrap_servers}"
    )
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    events = bounded(Simulator(run.config).events(), max_transactions=transactions, until=run.until)
    scorer = (
        TransactionScorer(score_url, concurrency=score_concurrency, batch=score_batch)
        if score_url is not None
        else None
    )
    if scorer is not None:
        events = scored_while_sent(events, scorer)
    try:
        with progress:
            task = progress.add_task("transaction records", total=transactions)

            def show(counts: ProductionCounts) -> None:
                sent = counts.sent_by_kind
                progress.update(
                    task,
                    completed=sent["transaction"] + sent["malformed"],
                    description=f"transaction records (+{sent['label']} labels)",
                )

            counts = produce_events(kafka, events, rate_per_s=rate, on_progress=show)
    except KafkaError as error:
        raise _fail(f"Kafka at {kafka.bootstrap_servers} failed: {error!r}") from None
    finally:
        tally = scorer.close() if scorer is not None else None
    console.print(_summary(counts, run.config))
    if tally is not None:
        console.print(_scoring_summary(tally, score_url or ""))
    sent = counts.sent_by_kind["transaction"] + counts.sent_by_kind["malformed"]
    if sent < transactions:
        console.print(
            f"[yellow]Event time reached the present after {sent} of {transactions} transaction records;[/] "
            "an earlier --start leaves room for more."
        )
    if tally is not None and tally.failed:
        raise _fail(
            f"{tally.failed} of {tally.calls} scoring calls to {score_url} did not answer 2xx "
            "(examples above); is serving up and ready? [bold]uv run berg status[/]"
        )
