"""The ``berg`` command: the local stack (up, down, status, doctor) and the demo."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import httpx
import typer
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from berg.roundtrip import MALFORMED_PAYLOADS, RoundTripResult, make_transactions, produce, run_round_trip
from berg.settings import SettingsError, load_settings
from berg.simulator.cli import simulate
from berg.stack.doctor import diagnose
from berg.stack.local import ComponentStatus, LocalStack, StackError
from berg.stack.monitoring_config import BERG_SCRAPE_JOB, register_scrape_target, unregister_scrape_target
from berg.stack.settings import StackSettings
from berg.web.app import WebSettings, create_app
from berg.web.server import BackgroundServer

__all__ = ["app", "main"]

app = typer.Typer(
    help="Berg: the ML lifecycle below the waterline. Runs the local stack and the demo.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


class CommandFailed(Exception):
    """A command could not do its job; the message tells the user what to do."""


@contextmanager
def _friendly_errors() -> Iterator[None]:
    try:
        yield
    except (StackError, SettingsError, CommandFailed) as error:
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(1) from None


def _stack() -> LocalStack:
    return LocalStack(load_settings(StackSettings))


def _status_table(statuses: list[ComponentStatus]) -> Table:
    table = Table(title="Berg local stack", title_justify="left")
    for column in ("component", "process", "pid", "health", "detail"):
        table.add_column(column)
    for status in statuses:
        health = "[green]healthy[/]" if status.healthy else "[red]unhealthy[/]"
        table.add_row(status.name, status.process_state, str(status.pid or "-"), health, status.detail)
    return table


def _bring_up(stack: LocalStack) -> None:
    if stack.is_up():
        console.print(f"[green]The stack is already up[/] (state in {stack.layout.root}).")
        created = stack.create_topics()
    else:
        with Live(_status_table([]), console=console, transient=True) as live:

            def step(what: str) -> None:
                live.console.print(f"Starting {what}")

            created = stack.up(on_step=step, on_update=lambda statuses: live.update(_status_table(statuses)))
    if created:
        console.print(f"Created topics: {', '.join(created)}")
    console.print(_status_table(stack.status()))


@app.command()
def up() -> None:
    """Start Kafka (KRaft), Prometheus and Alertmanager on loopback and wait until they are healthy."""
    with _friendly_errors():
        stack = _stack()
        _bring_up(stack)
        console.print("Next: [bold]uv run berg status[/], [bold]uv run berg demo[/], [bold]uv run berg down[/]")


@app.command()
def down() -> None:
    """Stop every process of the stack; nothing is left running. Data stays in the state directory."""
    with _friendly_errors():
        stack = _stack()
        if not stack.is_up() and stack.supervisor.pid() is None:
            console.print("The stack is not running.")
            return
        with console.status("Stopping the stack (Kafka shuts down cleanly; this takes a few seconds)"):
            killed = stack.down()
        if killed:
            console.print(f"[yellow]Killed processes that ignored their grace period:[/] {killed}")
        console.print("[green]The stack is down.[/] No process is left running.")


@app.command()
def status() -> None:
    """Show each component's process state and health; exit 1 unless all are healthy."""
    with _friendly_errors():
        stack = _stack()
        statuses = stack.status()
        console.print(_status_table(statuses))
        if not all(s.healthy for s in statuses):
            console.print(
                f"Not all components are healthy: [bold]berg up[/] starts them; logs are in {stack.layout.logs}"
            )
            raise typer.Exit(1)


@app.command()
def doctor() -> None:
    """Check this machine for what the stack needs, and say how to get what is missing."""
    with _friendly_errors():
        findings = diagnose(load_settings(StackSettings))
    table = Table(title="berg doctor", title_justify="left")
    for column in ("check", "result", "found", "fix"):
        table.add_column(column)
    for finding in findings:
        mark = "[green]ok[/]" if finding.ok else ("[red]missing[/]" if finding.required else "[yellow]optional[/]")
        table.add_row(finding.name, mark, finding.detail, "" if finding.ok else finding.fix)
    console.print(table)
    if any(not f.ok and f.required for f in findings):
        raise typer.Exit(1)


def _wait_for_scrape(stack: LocalStack, service: str, timeout_s: float) -> float:
    """Poll Prometheus until it holds a sample of the round trip's counter; return its value."""
    url = f"http://{stack.settings.host}:{stack.settings.ports.prometheus}/api/v1/query"
    query = f'berg_roundtrip_received_total{{job="{BERG_SCRAPE_JOB}",service="{service}"}}'
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = httpx.get(url, params={"query": query}, timeout=5).json()["data"]["result"]
        if result and float(result[0]["value"][1]) > 0:
            return float(result[0]["value"][1])
        time.sleep(0.5)
    raise CommandFailed(f"Prometheus did not scrape {service} within {timeout_s:.0f}s; see {stack.layout.logs}")


@app.command()
def demo(
    events: Annotated[int, typer.Option(min=1, max=100_000, help="Transactions to send through Kafka.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed for the generated transactions.")] = 7,
    stop: Annotated[bool, typer.Option("--down/--keep-up", help="Stop the stack at the end.")] = False,
) -> None:
    """The main job. Today: bring the stack up and round-trip events through Kafka, with metrics in Prometheus."""
    with _friendly_errors():
        stack = _stack()
        _bring_up(stack)
        transactions = make_transactions(events, random.Random(seed))  # noqa: S311 -- synthetic data, not security
        malformed_key = f"malformed-{uuid.uuid4().hex[:8]}".encode()
        produce(stack.kafka_settings, transactions, MALFORMED_PAYLOADS, malformed_key)
        console.print(f"Sent {events} transactions and {len(MALFORMED_PAYLOADS)} malformed records to transactions.raw")

        registry = CollectorRegistry()
        server = BackgroundServer(
            create_app(WebSettings(port=0), title="berg-demo", registry=registry), WebSettings(port=0)
        )
        server.start()
        service = "demo-roundtrip"
        register_scrape_target(stack.layout, service, f"127.0.0.1:{server.port}", {})
        try:
            progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )
            with progress:
                good = progress.add_task("received", total=events)
                bad = progress.add_task("dead-lettered", total=len(MALFORMED_PAYLOADS))

                def show(progress_so_far: RoundTripResult) -> None:
                    progress.update(good, completed=len(progress_so_far.received))
                    progress.update(bad, completed=len(progress_so_far.dead_lettered))

                result = run_round_trip(
                    stack.kafka_settings,
                    expected={t.event_id for t in transactions},
                    malformed_key=malformed_key,
                    expected_dead=len(MALFORMED_PAYLOADS),
                    registry=registry,
                    on_progress=show,
                )
            with console.status("Waiting for Prometheus to scrape the consumer's metrics"):
                scraped = _wait_for_scrape(stack, service, timeout_s=max(30.0, 4 * stack.settings.scrape_interval_s))
        finally:
            unregister_scrape_target(stack.layout, service)
            server.stop()

        summary = Table(title="Round trip", title_justify="left")
        summary.add_column("what")
        summary.add_column("count", justify="right")
        summary.add_row("transactions sent", str(events))
        summary.add_row("transactions received", str(len(result.received)))
        for reason in sorted(set(result.dead_lettered)):
            summary.add_row(f"dead-lettered: {reason}", str(result.dead_lettered.count(reason)))
        summary.add_row("received, as scraped by Prometheus", f"{scraped:.0f}")
        console.print(summary)
        if stop:
            down()
        else:
            console.print(
                f"The stack is still up: Prometheus http://{stack.settings.host}:{stack.settings.ports.prometheus}, "
                f"Alertmanager http://{stack.settings.host}:{stack.settings.ports.alertmanager}. "
                "[bold]uv run berg down[/] stops it."
            )


app.command()(simulate)


def main() -> None:
    """Entry point of the ``berg`` script."""
    app()
