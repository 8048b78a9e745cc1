"""Command groups other packages add to ``berg``, found through the ``berg.commands`` entry-point group.

A package names a Typer app in its ``pyproject.toml``, the way pytest finds its plug-ins::

    [project.entry-points."berg.commands"]
    pipeline = "berg_app.pipeline_cli:pipeline_app"

and ``berg pipeline ...`` runs it. The core library imports no such package: what it
knows of one is only the name of its group and what to say when it is not installed
(:data:`EXPECTED_GROUPS`), so ``berg pipeline`` without it is one line, not "no such
command".
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

import typer

__all__ = ["COMMAND_GROUP", "EXPECTED_GROUPS", "MissingGroup", "add_command_plugins"]

COMMAND_GROUP = "berg.commands"
"""The entry-point group whose entries are ``name = "module:typer_app"``."""


@dataclass(frozen=True)
class MissingGroup:
    """A command group a workspace package provides, and what to do when it is absent."""

    what: str
    """What the group drives, for the message (``the training pipeline``)."""
    package: str
    """The distribution that provides it."""

    def message(self, reason: str) -> str:
        return f"{self.what} is not installed ({reason}); run `uv sync` in the repository ({self.package})"


EXPECTED_GROUPS = {"pipeline": MissingGroup("the training pipeline", "berg-pipelines")}
"""Groups ``berg`` documents: each answers with one line when its package is missing or fails to load."""


def add_command_plugins(parent: typer.Typer) -> None:
    """Add every installed group to ``parent`` under its name, and a stand-in for each expected one that is
    missing or broken.

    A plug-in that fails to import is not allowed to break the other commands: its
    stand-in says why when it is run.
    """
    found = {entry.name: entry for entry in entry_points(group=COMMAND_GROUP)}
    for name in sorted(found.keys() | EXPECTED_GROUPS.keys()):
        missing = EXPECTED_GROUPS.get(name, MissingGroup(f"`berg {name}`", name))
        entry = found.get(name)
        if entry is None:
            _add_stand_in(parent, name, missing.message("no installed package provides it"))
            continue
        try:
            app = entry.load()
        except ImportError as error:
            _add_stand_in(parent, name, missing.message(str(error)))
            continue
        if not isinstance(app, typer.Typer):
            _add_stand_in(parent, name, f"the entry point {entry.value!r} ({COMMAND_GROUP}) is not a Typer app")
            continue
        parent.add_typer(app, name=name)


def _add_stand_in(parent: typer.Typer, name: str, message: str) -> None:
    """A command that takes any arguments (``--help`` too) and fails with ``message`` on one line."""

    @parent.command(
        name,
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        help=f"Not installed: {message}",
    )
    def unavailable() -> None:
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1)
