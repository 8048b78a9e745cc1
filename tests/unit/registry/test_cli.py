"""``berg models list | show | promote | rollback`` on a registry in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from berg.registry import ModelRegistry
from berg_app import cli
from berg_app.stack.settings import StackSettings
from tests.unit.registry.conftest import make_metadata

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide console, so table cells and messages are not wrapped in the captured output."""
    monkeypatch.setattr(cli, "console", Console(width=250, color_system=None))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A registry with two versions of ``fraud``."""
    registry = ModelRegistry(tmp_path / "registry")
    registry.register("fraud", {"model.bst": b"1", "evaluation.json": b"{}"}, make_metadata(pr_auc=0.81))
    registry.register("fraud", {"model.bst": b"2"}, make_metadata(parent="v0001", pr_auc=0.84))
    return tmp_path / "registry"


def berg(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli.app, ["models", *args], env={"BERG_REGISTRY_URI": str(root)})


def test_list_shows_each_model_with_its_latest_version_and_aliases(root: Path) -> None:
    assert berg(root, "promote", "fraud", "v0001").exit_code == 0

    result = berg(root, "list")

    assert result.exit_code == 0, result.output
    assert "fraud" in result.output
    assert "v0002" in result.output
    assert "production -> v0001" in result.output


def test_list_of_an_empty_registry_says_where_it_looked(tmp_path: Path) -> None:
    result = berg(tmp_path / "empty", "list")

    assert result.exit_code == 0
    assert f"No models in the registry at {tmp_path / 'empty'}" in result.output


def test_promote_rollback_and_show(root: Path) -> None:
    first = berg(root, "promote", "fraud", "v0001", "--reason", "first [model]")
    assert first.exit_code == 0, first.output
    assert "production of fraud -> v0001 (first time set)" in first.output
    second = berg(root, "promote", "fraud", "v0002", "--reason", "beats v0001 on pr_auc")
    assert "production of fraud -> v0002 (was v0001)" in second.output
    again = berg(root, "promote", "fraud", "v0002")
    assert "already points at v0002; nothing moved" in again.output
    staging = berg(root, "promote", "fraud", "v0001", "--alias", "staging")
    assert "staging of fraud -> v0001" in staging.output

    back = berg(root, "rollback", "fraud")
    assert back.exit_code == 0, back.output
    assert "production of fraud -> v0001 (rolled back from v0002)" in back.output
    resolved = ModelRegistry(root).resolve("fraud", "production")
    assert resolved is not None
    assert resolved.version == "v0001"

    shown = berg(root, "show", "fraud")
    assert shown.exit_code == 0, shown.output
    assert "Versions of fraud" in shown.output
    assert "pr_auc=0.84" in shown.output
    assert "History of production (fraud)" in shown.output
    assert "first [model]" in shown.output  # user text is printed, not read as markup
    assert "beats v0001 on pr_auc" in shown.output
    assert "rollback from v0002" in shown.output
    assert "History of staging (fraud)" in shown.output


def test_show_one_version_in_full(root: Path) -> None:
    result = berg(root, "show", "fraud", "--version", "v0001")

    assert result.exit_code == 0, result.output
    for expected in (
        "fraud v0001",
        f"{(root / 'fraud' / 'versions' / 'v0001' / 'model').as_uri()}",
        "fraud_model_v1",
        "run-42",
        "0123abcd",
        "metric pr_auc",
        "0.81",
        "file model/model.bst",
        "file files/evaluation.json",
        '"max_depth": 4',
    ):
        assert expected in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("promote", "fraud", "v0009"), "error: model 'fraud' has no version v0009; its versions: v0001, v0002"),
        (("promote", "fraud", "latest"), "error: 'latest' is not a version id"),
        (("promote", "other", "v0001"), "error: no model named 'other'"),
        (("promote", "fraud", "v0001", "--alias", "Prod!"), "error: 'Prod!' is not a valid alias"),
        (("rollback", "fraud"), "error: alias 'production' of model 'fraud' was never set"),
        (("show", "other"), "error: no model named 'other'"),
        (("show", "fraud", "--version", "v0003"), "error: model 'fraud' has no version v0003"),
    ],
)
def test_errors_exit_1_with_what_to_do(root: Path, args: tuple[str, ...], message: str) -> None:
    result = berg(root, *args)

    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_rollback_without_a_previous_version_is_refused(root: Path) -> None:
    berg(root, "promote", "fraud", "v0001")

    result = berg(root, "rollback", "fraud")

    assert result.exit_code == 1
    assert "has no previous version to roll back to" in result.output


def test_the_registry_defaults_to_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BERG_REGISTRY_URI", raising=False)
    monkeypatch.setenv("BERG_STATE_DIR", str(tmp_path / "state"))
    ModelRegistry(tmp_path / "state" / "registry").register("fraud", {"model.bst": b"1"}, make_metadata())

    assert StackSettings().model_registry_uri == str(tmp_path / "state" / "registry")
    result = CliRunner().invoke(cli.app, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert "fraud" in result.output

    monkeypatch.setenv("BERG_REGISTRY_URI", "s3://bucket/registry")
    assert StackSettings().model_registry_uri == "s3://bucket/registry"
