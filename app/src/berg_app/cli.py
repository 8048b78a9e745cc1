"""The ``berg`` command: the local stack (up, down, status, doctor), the demo and the model registry (models)."""

from __future__ import annotations

import getpass
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from berg.registry import AliasMove, ModelRegistry, ModelVersion, RegistryError, RolloutEvent, stage_of
from berg.registry.rollout import ACTOR_PATTERN
from berg.settings import SettingsError, load_settings
from berg.simulator.traffic import SimulatedEvent
from berg.usecase import UseCase
from berg_app.command_plugins import add_command_plugins
from berg_app.demo import DownstreamWatcher, RunOutcome
from berg_app.new_cli import new_app
from berg_app.runs_cli import runs_app
from berg_app.simulator import cli as simulator_cli
from berg_app.simulator.bounds import bounded
from berg_app.simulator.producer import ProductionCounts, produce_events
from berg_app.stack.doctor import diagnose
from berg_app.stack.local import ComponentStatus, LocalStack, StackError
from berg_app.stack.monitoring_config import BERG_SCRAPE_JOB
from berg_app.stack.settings import StackSettings

__all__ = ["app", "berg_command", "main"]

HELP = (
    "Berg: the ML lifecycle below the waterline. Runs the local stack and the demo; drives the training "
    "pipeline and the model registry."
)

app = typer.Typer(
    help=HELP,
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
    except (StackError, RegistryError, CommandFailed) as error:
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(1) from None


def _stack(use_case: str | None = None) -> LocalStack:
    """The local stack of the settings (``BERG_*``), serving ``use_case`` when one is named."""
    settings = load_settings(StackSettings)
    if use_case is not None:
        settings = settings.model_copy(update={"use_case": use_case})
    return LocalStack(settings)


def _status_table(statuses: list[ComponentStatus]) -> Table:
    table = Table(title="Berg local stack", title_justify="left")
    for column in ("component", "process", "pid", "health", "detail"):
        table.add_column(column)
    for status in statuses:
        health = "[green]healthy[/]" if status.healthy else "[red]unhealthy[/]"
        table.add_row(status.name, status.process_state, str(status.pid or "-"), health, status.detail)
    return table


def _bring_up(stack: LocalStack) -> None:
    """Start the stack, or heal it when it is up: say what was (re)started, show every component."""
    healing = stack.is_up()
    verb = "Restarting" if healing else "Starting"
    with Live(_status_table([]), console=console, transient=True) as live:

        def step(what: str) -> None:
            live.console.print(f"{verb} {what}")

        outcome = stack.up(on_step=step, on_update=lambda statuses: live.update(_status_table(statuses)))
    if outcome.created_topics:
        console.print(f"Created topics: {', '.join(outcome.created_topics)}")
    console.print(_status_table(outcome.statuses))
    count = len(outcome.statuses)
    if outcome.fresh:
        console.print(f"[green]Started the stack:[/] all {count} components healthy (state in {stack.layout.root}).")
    elif outcome.started:
        console.print(
            f"[green]Restarted {', '.join(outcome.started)}[/] (they were not running); all {count} components healthy."
        )
    else:
        console.print(f"[green]The stack is up; nothing to do:[/] all {count} components healthy.")


@app.command()
def up() -> None:
    """Start the local stack, or heal it: Kafka (KRaft), Prometheus, Alertmanager and the Berg services.

    On loopback, under BERG_STATE_DIR. On a stack already up it starts whatever is not running (Kafka before
    the topics and the services) and waits until every component is healthy. BERG_SERVICES picks the services.
    """
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
    """Show each component's process state and health; exit 1 unless all are healthy (berg up starts the rest)."""
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


def _prometheus_totals(stack: LocalStack, query: str, timeout_s: float, at_least: float) -> dict[str, float]:
    """Poll Prometheus until ``query`` (summed by service) reaches ``at_least`` for some service."""
    url = f"http://{stack.settings.host}:{stack.settings.ports.prometheus}/api/v1/query"
    deadline = time.monotonic() + timeout_s
    totals: dict[str, float] = {}
    while time.monotonic() < deadline:
        result = httpx.get(url, params={"query": query}, timeout=5).json()["data"]["result"]
        totals = {sample["metric"].get("service", "?"): float(sample["value"][1]) for sample in result}
        if totals and max(totals.values()) >= at_least:
            break
        time.sleep(1.0)
    return totals


def _outcome_table(
    use_case: UseCase, counts: ProductionCounts, outcome: RunOutcome, scraped: dict[str, float]
) -> Table:
    scored, labels = use_case.streams
    table = Table(title="The data plane, end to end", title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row(f"scored events sent to {scored.raw_topic}", str(counts.by_kind["scored"]))
    table.add_row(f"  arrived on {scored.valid_topic}", str(len(outcome.valid_scored)))
    table.add_row(f"labels sent to {labels.raw_topic}", str(counts.by_kind["label"]))
    table.add_row(f"  arrived on {labels.valid_topic}", str(len(outcome.valid_labels)))
    table.add_row("malformed records sent", str(counts.by_kind["malformed"]))
    for (malformed_class, stage, reason), count in sorted(outcome.dead_letters_by_class().items()):
        table.add_row(f"  in berg.dlq: {malformed_class} (refused by {stage}: {reason})", str(count))
    for service, total in sorted(scraped.items()):
        table.add_row(f"records consumed by {service}, as scraped by Prometheus", f"{total:.0f}")
    return table


def _show_features(
    stack: LocalStack, use_case: UseCase, outcome: RunOutcome, events: list[SimulatedEvent], timeout_s: float
) -> None:
    # Feast is the berg[features] extra: imported only here.
    from berg.features.settings import FeatureStoreSettings
    from berg.features.store_config import FeatureStoreConfig
    from berg_app.showcase import feature_store_tables, wait_for_label_store, wait_for_snapshots

    if "features" not in stack.settings.services:
        return
    root = stack.layout.root
    # The embedded profile over the stack's state directory, in the repo BERG_FEATURE_REPO names (else this checkout's).
    feature_store = FeatureStoreConfig.embedded(root.absolute(), load_settings(FeatureStoreSettings).feature_repo)
    ids = set(outcome.valid_scored)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console) as progress:
        task = progress.add_task("aggregated into the feature store", total=len(ids))
        stored = wait_for_label_store(
            root, use_case, ids, timeout_s, lambda held: progress.update(task, completed=held)
        )
    if not stored:
        raise CommandFailed(
            f"the features service did not store every valid scored event within {timeout_s:.0f}s; "
            f"see {stack.layout.logs / 'features.log'}"
        )
    scored = [use_case.scored.contract.model_validate_json(e.value) for e in events if e.kind == "scored"]
    busiest = {
        entity.key: [key for key, _ in Counter(getattr(event, entity.key) for event in scored).most_common(3)]
        for entity in use_case.features.entities
    }
    for view in use_case.features.snapshots:
        with console.status(f"Waiting for the features service to materialize the {view.name} snapshots"):
            if not wait_for_snapshots(feature_store, view, busiest[view.entity.key], timeout_s):
                raise CommandFailed(
                    f"no {view.name} snapshot reached the online store within {timeout_s:.0f}s; "
                    f"see {stack.layout.logs / 'features.log'}"
                )
    for table in feature_store_tables(feature_store, use_case.features, busiest):
        console.print(table)
    console.print(
        f"Feast repo: feature_repo/ (registry, online store and offline sources under {root / 'feast'}); "
        f"`BERG_STATE_DIR={root.absolute()} uv run feast -c feature_repo serve` serves it over HTTP."
    )


@app.command()
def demo(
    story: Annotated[
        Literal["lifecycle", "data-plane"],
        typer.Option(help="lifecycle: the whole retraining loop; data-plane: ingestion, validation and Feast only."),
    ] = "lifecycle",
    use_case: Annotated[
        str | None,
        typer.Option(
            help="The use case the stack serves and the demo simulates; default: BERG_USE_CASE, else the only "
            "one installed."
        ),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="What the lifecycle injects: one of the use case simulator's scenarios; default: its drift scenario."
        ),
    ] = None,
    population: Annotated[
        int | None,
        typer.Option(min=50, max=5_000, help="Subjects of the lifecycle's traffic; default: the simulator's."),
    ] = None,
    after_days: Annotated[
        float, typer.Option(min=0.5, max=14, help="Days of traffic after the drift, scored live while the loop closes.")
    ] = 1.0,
    live_span_s: Annotated[
        float,
        typer.Option(
            min=10,
            max=3600,
            help="Speed of that live traffic: the wall seconds it is spread over (it hurries once serving swapped).",
        ),
    ] = 600,
    watch_s: Annotated[
        float,
        typer.Option(
            min=0,
            max=3600,
            help="After the swap, spread the rest of that traffic over this many seconds (0: at once), so "
            "monitoring and the alert rules watch the new champion on its own world.",
        ),
    ] = 0,
    scored_events: Annotated[
        int, typer.Option(min=1, max=200_000, help="data-plane: simulated scored events to send.")
    ] = 2_000,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Random seed of the simulator; default: the lifecycle's fixed seed on a fresh stack (the same "
            "story every time), else a new one per run (event ids must be new to a stack that already ran the "
            "demo: ingestion deduplicates on them)."
        ),
    ] = None,
    malformed_share: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="data-plane: share of malformed records (every class).")
    ] = 0.05,
    timeout_s: Annotated[float, typer.Option(min=1, help="How long to wait for each act.")] = 600,
    stop: Annotated[bool, typer.Option("--down/--keep-up", help="Stop the stack at the end.")] = False,
) -> None:
    """The main job: start (or heal) the stack, then run the whole lifecycle on it, with an HTML report."""
    with _friendly_errors():
        stack = _stack(use_case)
        described = stack.use_case()
        # Refused before anything starts: a use case without a simulator, a scenario it does not play.
        simulator_cli.simulator_of(described)
        if scenario is not None:
            simulator_cli.checked_scenario(described, scenario)
        _bring_up(stack)
        if seed is None:
            seed = _default_seed(stack, story, described.name)
        console.print(f"Simulator seed {seed} ([bold]--seed {seed}[/] replays the same traffic)")
        if story == "data-plane":
            _data_plane_demo(stack, described, scored_events, seed, malformed_share, timeout_s)
        else:
            _lifecycle_demo(stack, described, scenario, population, after_days, live_span_s, watch_s, seed, timeout_s)
        if stop:
            down()
        else:
            console.print("The stack is still up; [bold]uv run berg down[/] stops it.")


def _default_seed(stack: LocalStack, story: str, model: str) -> int:
    """The lifecycle's fixed seed on a stack with no version of ``model`` yet; otherwise a fresh one (its ids were
    seen)."""
    from berg_app.lifecycle.story import LIFECYCLE_SEED

    if story == "lifecycle" and not ModelRegistry(stack.settings.model_registry_uri).versions(model):
        return LIFECYCLE_SEED
    if story == "lifecycle":
        console.print("This stack already ran the lifecycle: new traffic needs a new seed, so the story differs.")
    return secrets.randbelow(2**31)


def _lifecycle_demo(
    stack: LocalStack,
    use_case: UseCase,
    scenario: str | None,
    population: int | None,
    after_days: float,
    live_span_s: float,
    watch_s: float,
    seed: int,
    timeout_s: float,
) -> None:
    from berg_app.lifecycle.probes import PrometheusClient
    from berg_app.lifecycle.report import summary_rows, write_report
    from berg_app.lifecycle.story import StoryError, StoryOptions, tell_story

    options = StoryOptions(
        model=use_case.name,
        use_case=use_case.name,
        scenario=scenario,
        population=population,
        seed=seed,
        window_days=stack.settings.training_window_days,
        after_days=after_days,
        live_span_s=live_span_s,
        watch_s=watch_s,
        act_timeout_s=timeout_s,
    )
    try:
        outcome = tell_story(stack, options, console)
    except StoryError as error:
        raise CommandFailed(f"{error}. `uv run berg status` and the logs in {stack.layout.logs} say why") from None
    registry = ModelRegistry(stack.settings.model_registry_uri)
    table = Table(title="berg demo: the lifecycle", title_justify="left")
    table.add_column("what")
    table.add_column("value")
    for what, value in summary_rows(outcome, registry, options.model):
        table.add_row(what, escape(value))
    console.print(table)
    prometheus = PrometheusClient(f"http://{stack.settings.host}:{stack.settings.ports.prometheus}")
    try:
        report = write_report(
            stack.layout.root / "reports" / f"demo-{outcome.started_at:%Y%m%dT%H%M%S}.html",
            outcome,
            prometheus,
            registry,
            options.model,
        )
    finally:
        prometheus.close()
    console.print(f"Report: {report}")


def _data_plane_demo(
    stack: LocalStack, use_case: UseCase, scored_events: int, seed: int, malformed_share: float, timeout_s: float
) -> None:
    """The data plane act: malformed and valid traffic through ingestion and validation, features in Feast."""
    simulator = simulator_cli.simulator_of(use_case)
    run = simulator_cli.plan_run(
        simulator,
        now=datetime.now(UTC),
        scenario="malformed",
        scored_events=scored_events,
        seed=seed,
        start=None,
        onset=None,
        malformed_share=malformed_share,
        # A small population makes a long event-time span, so delayed labels arrive within the run.
        population=50,
    )
    # Malformed records from the first event on (the default onset is mid-run).
    plan = replace(run.plan, onset=run.plan.start)
    events = list(bounded(simulator.events(plan), max_scored=run.scored_events, until=run.until))
    outcome = RunOutcome.of(events, use_case)
    watcher = DownstreamWatcher(stack.kafka_settings, use_case)
    try:
        with console.status(f"Producing {len(events)} simulated records to the raw topics"):
            counts = produce_events(stack.kafka_settings, events)
        refused = {kind: n for kind, n in counts.refused_too_large.items() if kind != "oversized"}
        if refused:
            raise CommandFailed(f"Kafka refused records for their size: {refused}; `uv run berg up` updates the topics")
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        with progress:
            valid = progress.add_task(use_case.scored.valid_topic, total=len(outcome.expected_scored))
            labels = progress.add_task(use_case.labels.valid_topic, total=len(outcome.expected_labels))
            dead = progress.add_task("berg.dlq", total=outcome.expected_dead_letters)

            def show(now: RunOutcome) -> None:
                progress.update(valid, completed=len(now.valid_scored))
                progress.update(labels, completed=len(now.valid_labels))
                progress.update(dead, completed=len(now.dead_letters))

            complete = watcher.wait(outcome, timeout_s, on_progress=show)
    finally:
        watcher.close()
    with console.status("Asking Prometheus what the services reported"):
        scraped = _prometheus_totals(
            stack,
            f'sum by (service) (berg_consumer_records_total{{job="{BERG_SCRAPE_JOB}"}})',
            timeout_s=max(30.0, 3 * stack.settings.scrape_interval_s),
            at_least=len(events),
        )
    console.print(_outcome_table(use_case, counts, outcome, scraped))
    root, host, ports = stack.layout.root, stack.settings.host, stack.settings.ports
    data_docs = root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    console.print(
        f"Landing zone: {root / 'landing'}\n"
        f"Validation history (GX Data Docs): {data_docs}\n"
        f"Prometheus http://{host}:{ports.prometheus}, Alertmanager http://{host}:{ports.alertmanager}"
    )
    if not complete:
        raise CommandFailed(
            f"not every record came out within {timeout_s:.0f}s; `uv run berg status` and the logs in "
            f"{stack.layout.logs} say why"
        )
    _show_features(stack, use_case, outcome, events, timeout_s)


app.command(name="simulate")(simulator_cli.simulate)

models_app = typer.Typer(
    help="The model registry: versions with their metrics and lineage, and the aliases serving follows.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")
app.add_typer(new_app, name="new")

ModelName = Annotated[str, typer.Argument(help="The model, e.g. my-model.", show_default=False)]
AliasOption = Annotated[str, typer.Option(help="The alias to move; serving follows production.")]


def _registry() -> ModelRegistry:
    return ModelRegistry(load_settings(StackSettings).model_registry_uri)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _metrics(version: ModelVersion) -> str:
    return escape("\n".join(f"{name}={value:.4g}" for name, value in sorted(version.metrics.items())) or "-")


def _aliases_of(version: str, aliases: dict[str, AliasMove]) -> str:
    return ", ".join(alias for alias, move in sorted(aliases.items()) if move.version == version)


@models_app.command("list")
def list_models() -> None:
    """Every model in the registry: its versions, the latest one and where its aliases point."""
    with _friendly_errors():
        registry = _registry()
        names = registry.models()
        if not names:
            console.print(
                f"No models in the registry at {escape(registry.root_uri)}. The training pipeline registers them; "
                "BERG_REGISTRY_URI points at another registry."
            )
            return
        table = Table(title=f"Models in {escape(registry.root_uri)}", title_justify="left")
        for column in ("model", "versions", "latest", "registered", "aliases"):
            table.add_column(column)
        for name in names:
            versions = registry.versions(name)
            aliases = registry.aliases(name)
            pointers = ", ".join(f"{alias} -> {move.version}" for alias, move in sorted(aliases.items()))
            table.add_row(
                name, str(len(versions)), versions[-1].version, _when(versions[-1].created_at), pointers or "-"
            )
        console.print(table)


def _versions_table(name: str, versions: list[ModelVersion], aliases: dict[str, AliasMove]) -> Table:
    table = Table(title=f"Versions of {name} (`--version V` shows one in full)", title_justify="left")
    for column in ("version", "aliases", "registered", "parent", "metrics"):
        table.add_column(column, no_wrap=column != "metrics")
    for version in versions:
        table.add_row(
            version.version,
            _aliases_of(version.version, aliases) or "-",
            f"{version.created_at:%Y-%m-%d %H:%M}",
            version.lineage.parent_version or "-",
            _metrics(version),
        )
    return table


def _history_table(name: str, alias: str, history: list[AliasMove]) -> Table:
    table = Table(title=f"History of {alias} ({name})", title_justify="left")
    for column in ("#", "moved at", "action", "version", "previous", "reason"):
        table.add_column(column, no_wrap=column != "reason")
    for number, move in enumerate(history, start=1):
        table.add_row(
            str(number),
            _when(move.moved_at),
            move.action,
            move.version,
            move.previous or "-",
            escape(move.reason) or "-",
        )
    return table


def _version_details(registry: ModelRegistry, version: ModelVersion, aliases: dict[str, AliasMove]) -> Table:
    table = Table(title=f"{version.model_name} {version.version}", title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    lineage = version.lineage
    profile = sorted(version.reference_profile)
    rows = [
        ("registered", _when(version.created_at)),
        ("aliases", _aliases_of(version.version, aliases) or "-"),
        ("storageUri", escape(registry.uri(version.model_name, version.version))),
        ("data window", f"{_when(lineage.data_start)} .. {_when(lineage.data_end)}"),
        ("feature service", escape(lineage.feature_service)),
        ("pipeline run", escape(lineage.pipeline_run_id)),
        ("code version", escape(lineage.code_version)),
        ("parent (champion)", lineage.parent_version or "-"),
        ("params", escape(json.dumps(version.params, sort_keys=True)) if version.params else "-"),
        ("reference profile", escape(", ".join(profile)) if profile else "-"),
    ]
    rows += [(f"metric {escape(name)}", f"{value:.6g}") for name, value in sorted(version.metrics.items())]
    rows += [
        (f"file {escape(stored.path)}", f"{stored.size_bytes} bytes, sha256 {stored.sha256[:16]}")
        for stored in [version.model_file, *version.files]
    ]
    for field, value in rows:
        table.add_row(field, value)
    return table


@models_app.command("show")
def show_model(
    name: ModelName,
    version: Annotated[
        str | None, typer.Option("--version", help="Show this version in full (metrics, lineage, files).")
    ] = None,
) -> None:
    """A model's versions and the history of its aliases, or one version in full with --version."""
    with _friendly_errors():
        registry = _registry()
        aliases = registry.aliases(name)
        if version is not None:
            console.print(_version_details(registry, registry.get(name, version), aliases))
            return
        versions = registry.versions(name)
        if not versions:
            raise CommandFailed(
                f"no model named {name!r} in the registry at {registry.root_uri}; "
                "`berg models list` shows the models it holds"
            )
        console.print(_versions_table(name, versions, aliases))
        if not aliases:
            console.print(f"No alias is set: `berg models promote {name} VERSION` points production at a version.")
        for alias in sorted(aliases):
            console.print(_history_table(name, alias, registry.history(name, alias)))


@models_app.command("promote")
def promote_model(
    name: ModelName,
    version: Annotated[str, typer.Argument(help="The version to point the alias at, e.g. v0003.", show_default=False)],
    alias: AliasOption = "production",
    reason: Annotated[str, typer.Option(help="Why; kept in the alias history.")] = "",
) -> None:
    """Point an alias (production by default) at a version; serving follows production."""
    with _friendly_errors():
        registry = _registry()
        before = registry.alias(name, alias)
        move = registry.promote(name, version, alias=alias, reason=reason)
        if before is not None and before.version == version:
            console.print(f"{alias} of {name} already points at {version}; nothing moved.")
            return
        was = f"was {move.previous}" if move.previous else "first time set"
        console.print(f"[green]{alias}[/] of {name} -> {move.version} ({was}).")


@models_app.command("rollback")
def rollback_model(
    name: ModelName,
    alias: AliasOption = "production",
    reason: Annotated[str, typer.Option(help="Why; kept in the alias history.")] = "",
) -> None:
    """Point an alias back at the version it named before its last promotion."""
    with _friendly_errors():
        registry = _registry()
        before = registry.alias(name, alias)
        move = registry.rollback(name, alias=alias, reason=reason)
        rolled_from = before.version if before is not None else "?"
        console.print(f"[green]{alias}[/] of {name} -> {move.version} (rolled back from {rolled_from}).")


VersionArgument = Annotated[str, typer.Argument(help="The version, e.g. v0003.", show_default=False)]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why; kept in the version's rollout history.", show_default=False)
]
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who decides (default: your user name).", show_default=False)
]


def _reviewer(by: str | None) -> str:
    """``--by``, or the OS user; refused when it is not a name the history can keep."""
    try:
        actor = by if by is not None else getpass.getuser()
    except (OSError, KeyError):
        raise CommandFailed("cannot tell who you are; say it with --by NAME") from None
    if not re.fullmatch(ACTOR_PATTERN, actor):
        raise CommandFailed(f"{actor!r} is not a name the history can keep (letters, digits, @._:/+-); use --by NAME")
    return actor


def _rollout_table(name: str, version: str, history: list[RolloutEvent]) -> Table:
    stage = stage_of(history) or "not a candidate"
    table = Table(title=f"Rollout of {name} {version}: {stage}", title_justify="left")
    for column in ("when", "action", "who", "why"):
        table.add_column(column, no_wrap=column != "why")
    for event in history:
        table.add_row(_when(event.at), event.action, escape(event.actor), escape(event.reason) or "-")
    return table


def _review(name: str, version: str, *, approve: bool, reason: str, by: str | None) -> None:
    with _friendly_errors():
        registry = _registry()
        actor = _reviewer(by)
        registry.get(name, version)
        event = registry.review(name, version, approve=approve, actor=actor, reason=reason)
        if approve:
            console.print(
                f"[green]approved[/] {name} {version} by {escape(event.actor)}; the controller promotes it on its "
                f"next tick (`berg models rollout {name} {version}` follows it)."
            )
        else:
            console.print(f"[yellow]rejected[/] {name} {version} by {escape(event.actor)}; production stays as it is.")


@models_app.command("approve")
def approve_version(name: ModelName, version: VersionArgument, reason: ReasonOption, by: ByOption = None) -> None:
    """Approve a version waiting for approval; the retraining controller then promotes it."""
    _review(name, version, approve=True, reason=reason, by=by)


@models_app.command("reject")
def reject_version(name: ModelName, version: VersionArgument, reason: ReasonOption, by: ByOption = None) -> None:
    """Reject a version waiting for approval; it never reaches production."""
    _review(name, version, approve=False, reason=reason, by=by)


@models_app.command("pending")
def pending_versions(
    name: Annotated[str | None, typer.Argument(help="One model (default: every model).", show_default=False)] = None,
) -> None:
    """Versions waiting for a person's approval."""
    with _friendly_errors():
        registry = _registry()
        names = [name] if name is not None else registry.models()
        table = Table(title="Waiting for approval", title_justify="left")
        for column in ("model", "version", "policy", "waiting since", "last step"):
            table.add_column(column, no_wrap=column != "last step")
        rows = 0
        for model in names:
            for version, history in registry.pending_approval(model):
                before = history[-2] if len(history) > 1 else history[-1]
                table.add_row(
                    model,
                    version,
                    history[0].policy or "-",
                    _when(history[-1].at),
                    escape(f"{before.action}: {before.reason}"),
                )
                rows += 1
        if rows == 0:
            console.print("No version is waiting for approval.")
            return
        console.print(table)
        console.print(
            "`berg models approve|reject MODEL VERSION --reason WHY` decides; `berg models rollout` shows one."
        )


@models_app.command("rollout")
def rollout_history(name: ModelName, version: VersionArgument) -> None:
    """A version's rollout history: when, what, who and why."""
    with _friendly_errors():
        registry = _registry()
        registry.get(name, version)
        history = registry.rollout_history(name, version)
        if not history:
            console.print(
                f"{name} {version} has no rollout history: it was never a candidate (promoted by the gate or by hand; "
                f"`berg models show {name}` shows production's history)."
            )
            return
        console.print(_rollout_table(name, version, history))


@app.command("dashboards")
def dashboards(
    folder: Annotated[
        Path, typer.Argument(help="Where to write <uid>.json for each dashboard (the Helm chart's folder).")
    ] = Path("helm/berg/dashboards"),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 naming the files that differ from the code.")
    ] = False,
) -> None:
    """Write the Grafana dashboards (berg_app.dashboards, dashboards as code) as the JSON files the Helm chart ships."""
    # The Grafana Foundation SDK is a dev dependency: imported only here.
    from berg_app.dashboards import DASHBOARDS, stale_files, write_dashboards

    if not check:
        for path in write_dashboards(folder):
            console.print(f"wrote {escape(str(path))}")
        console.print(f"{len(DASHBOARDS)} dashboards in {escape(str(folder))} are up to date.")
        # What is left stale after writing is JSON no dashboard generates (a renamed uid): the chart would ship it.
        for file in stale_files(folder):
            console.print(
                f"[yellow]not generated by berg_app.dashboards, delete it:[/] {escape(str(folder / file.name))}"
            )
        return
    stale = stale_files(folder)
    for file in stale:
        console.print(f"[red]stale:[/] {escape(str(folder / file.name))} ({file.why})")
    if stale:
        extra = any(file.why == "not generated" for file in stale)
        console.print(
            f"The dashboards in {escape(str(folder))} differ from what berg_app.dashboards generates: "
            f"[bold]uv run berg dashboards {escape(str(folder))}[/] rewrites them"
            + ("; delete the JSON files it does not generate." if extra else ".")
        )
        raise typer.Exit(1)
    console.print(f"[green]{len(DASHBOARDS)} dashboards in {escape(str(folder))} are up to date.[/]")


def berg_command() -> typer.Typer:
    """The whole ``berg`` command: the commands above (``app``) and the groups of installed plug-ins
    (:mod:`berg_app.command_plugins`, e.g. ``berg pipeline`` from berg-pipelines).

    Built when called, not at import: finding the plug-ins reads the installed packages' metadata.
    """
    command = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False)
    command.add_typer(app)  # without a name: its commands are berg's own, not a group
    add_command_plugins(command)
    return command


def main() -> None:
    """Entry point of the ``berg`` script: a bad ``BERG_*`` setting, in any command, is one line on stderr."""
    try:
        berg_command()()
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None
