"""``berg`` finds command groups through the ``berg.commands`` entry points, and says so in one line when one is
missing or broken."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from typer.testing import CliRunner

from berg_app import command_plugins
from berg_app.cli import berg_command

pytestmark = pytest.mark.unit


def _installed(monkeypatch: pytest.MonkeyPatch, *entries: EntryPoint) -> None:
    monkeypatch.setattr(command_plugins, "entry_points", lambda group: [e for e in entries if e.group == group])


@pytest.mark.parametrize("arguments", [["pipeline", "run", "--model-name", "fraud"], ["pipeline", "--help"]])
def test_without_the_pipeline_package_berg_pipeline_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch, arguments: list[str]
) -> None:
    _installed(monkeypatch)
    result = CliRunner().invoke(berg_command(), arguments)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: the training pipeline is not installed (no installed package provides it); "
        "run `uv sync` in the repository (berg-pipelines)"
    ]


def test_a_plug_in_that_fails_to_import_breaks_only_its_own_group(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(monkeypatch, EntryPoint("pipeline", "berg_no_such_package.cli:app", command_plugins.COMMAND_GROUP))
    command = berg_command()
    broken = CliRunner().invoke(command, ["pipeline", "compile"])
    assert broken.exit_code == 1
    assert len(broken.stderr.splitlines()) == 1
    assert "berg_no_such_package" in broken.stderr
    assert CliRunner().invoke(command, ["models", "--help"]).exit_code == 0


def test_an_installed_group_runs_under_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # Any Typer app will do as a plug-in: here the runs group, under another name.
    _installed(monkeypatch, EntryPoint("extra", "berg_app.runs_cli:runs_app", command_plugins.COMMAND_GROUP))
    command = berg_command()
    result = CliRunner().invoke(command, ["extra", "--help"])
    assert result.exit_code == 0, result.output
    assert "pipeline runs" in result.stdout
    # The expected pipeline group is still there, as its one-line stand-in.
    assert CliRunner().invoke(command, ["pipeline"]).exit_code == 1
