"""``berg new use-case NAME``: write the skeleton of a use case (:mod:`berg_app.scaffold`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from berg_app.scaffold import ScaffoldError, scaffold_use_case

__all__ = ["new_app"]

console = Console()

new_app = typer.Typer(help="Start something new from a skeleton whose own tests pass.", no_args_is_help=True)


@new_app.command("use-case")
def new_use_case(
    name: Annotated[str, typer.Argument(help="The use case's name: lower-case letters, digits, underscores.")],
    usecases_dir: Annotated[
        Path, typer.Option("--dir", help="Where use cases live: the workspace's usecases/ folder.")
    ] = Path("usecases"),
) -> None:
    """Write usecases/NAME: contracts, card, data rules, descriptor, entry point and tests (docs/use-cases.md)."""
    try:
        written = scaffold_use_case(name, usecases_dir)
    except ScaffoldError as error:
        console.print(f"[red]{escape(str(error))}[/red]")
        raise typer.Exit(1) from None
    for path in written:
        console.print(f"  wrote {escape(str(path))}")
    console.print(
        f"Next: [bold]uv sync[/bold] installs it (its tests run with make test); "
        f"[bold]BERG_USE_CASE={name}[/bold] selects it. docs/use-cases.md walks on from here."
    )
