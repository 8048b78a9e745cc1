"""``berg runs`` and ``berg runs show ID``: the retraining controller's pipeline runs, and why failed ones failed.

Talks to the controller of the local stack (its port from the stack's settings,
its bearer token from ``<state dir>/secrets/controller-token``) through its
runs API: ``GET /runs`` and ``GET /runs/{id}``.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from berg.settings import SettingsError, load_settings
from berg.usecase import UseCaseError, resolve_use_case
from berg_app.lifecycle.probes import ControllerClient, StackQueryError
from berg_app.stack.layout import StateLayout
from berg_app.stack.settings import StackSettings

__all__ = ["runs_app"]

console = Console()

runs_app = typer.Typer(
    help="The retraining controller's pipeline runs: status, what started them, and why failed ones failed.",
    invoke_without_command=True,
)

ModelOption = Annotated[
    str | None,
    typer.Option(
        help="Only the runs of this model; default: the use case's (BERG_USE_CASE, or the only one installed).",
        show_default=False,
    ),
]
LimitOption = Annotated[int, typer.Option(min=1, max=100, help="How many of the newest runs to list.")]
UrlOption = Annotated[
    str, typer.Option("--controller-url", help="The controller's API; default: the local stack's controller port.")
]
_STATUS_STYLE = {"succeeded": "green", "failed": "red", "running": "cyan", "pending": "yellow"}


def _settings() -> StackSettings:
    try:
        return load_settings(StackSettings)
    except SettingsError as error:
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(1) from None


def _use_case_model() -> str:
    """The model the use case trains: its name."""
    try:
        return resolve_use_case(_settings().use_case).name
    except UseCaseError as error:
        console.print(f"[bold red]error:[/] BERG_USE_CASE: {escape(str(error))}")
        raise typer.Exit(1) from None


def _client(controller_url: str) -> ControllerClient:
    settings = _settings()
    token_file = StateLayout.at(settings.state_dir).controller_token
    # The runs API answers without a token; the stack's token is sent all the same, as every client does.
    token = token_file.read_text(encoding="utf-8").strip() if token_file.is_file() else ""
    return ControllerClient(controller_url or f"http://{settings.host}:{settings.ports.controller}", token)


def _ask(controller_url: str, question: str, call: Any) -> Any:
    client = _client(controller_url)
    try:
        return call(client)
    except httpx.HTTPError as error:
        console.print(
            f"[bold red]error:[/] cannot reach the controller for {question} ({escape(str(error))}); "
            "is the stack up? `berg status` says, `berg up` starts it"
        )
        raise typer.Exit(1) from None
    except StackQueryError as error:
        console.print(f"[bold red]error:[/] {escape(str(error))}")
        raise typer.Exit(1) from None
    finally:
        client.close()


def _status(run: dict[str, Any]) -> str:
    status = str(run.get("status", "?"))
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _first_line(text: str | None) -> str:
    return text.splitlines()[0] if text else ""


@runs_app.callback()
def list_runs(
    context: typer.Context,
    model: ModelOption = None,
    limit: LimitOption = 20,
    controller_url: UrlOption = "",
) -> None:
    """The newest runs of a model: status, source, reason, and for failed ones the step and the error's first line."""
    if context.invoked_subcommand is not None:
        return
    model = model or _use_case_model()
    runs = _ask(controller_url, "its runs", lambda client: client.runs(model))[:limit]
    if not runs:
        console.print(f"No pipeline runs of {escape(model)} yet.")
        return
    table = Table(
        title=f"Pipeline runs of {escape(model)} (`berg runs show ID` shows one in full)", title_justify="left"
    )
    for column in ("id", "status", "created", "source", "reason", "failed step", "error"):
        table.add_column(column, no_wrap=column in ("id", "status", "created"))
    for run in runs:
        table.add_row(
            escape(str(run["id"])),
            _status(run),
            str(run.get("created_at", ""))[:19].replace("T", " "),
            escape(str(run.get("source", ""))),
            escape(str(run.get("reason", ""))),
            escape(run.get("failed_step") or "-"),
            escape(_first_line(run.get("error")) or "-"),
        )
    console.print(table)


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="The run's id (from `berg runs`).", show_default=False)],
    controller_url: UrlOption = "",
) -> None:
    """One run in full, with the first lines of its error when it failed."""
    run = _ask(controller_url, f"run {run_id}", lambda client: client.run(run_id))
    fields = (
        "id", "model", "status", "source", "reason", "launcher", "created_at", "started_at", "finished_at",
        "external_id", "exit_code", "detail", "result_version", "promoted", "failed_step",
    )  # fmt: skip
    for name in fields:
        value = run.get(name)
        shown = _status(run) if name == "status" else escape("-" if value is None else str(value))
        console.print(f"[bold]{name}:[/] {shown}")
    if run.get("error"):
        console.print("[bold]error:[/]")
        console.print(escape(str(run["error"])), soft_wrap=True)
