"""``berg models approve | reject | pending | rollout`` on a registry in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from berg.registry import ModelRegistry
from berg_app import cli
from tests.unit.registry.conftest import make_metadata

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "console", Console(width=250, color_system=None))


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """``fraud`` v0001 in production, v0002 waiting for approval after its shadow stage."""
    registry = ModelRegistry(tmp_path / "registry")
    registry.register("fraud", {"model.bst": b"1"}, make_metadata(pr_auc=0.81))
    registry.promote("fraud", "v0001")
    registry.register("fraud", {"model.bst": b"2"}, make_metadata(parent="v0001", pr_auc=0.84))
    for action in ("candidate", "shadow_started", "shadow_passed", "awaiting_approval"):
        registry.record_rollout("fraud", "v0002", action, actor="berg-controller", policy="shadow+approval",
                                reason=f"step {action}")  # fmt: skip
    return registry


def berg(registry: ModelRegistry, *args: str) -> Result:
    return CliRunner().invoke(cli.app, ["models", *args], env={"BERG_REGISTRY_URI": registry.root_uri})


def test_pending_lists_the_version_waiting_for_approval(registry: ModelRegistry) -> None:
    result = berg(registry, "pending")

    assert result.exit_code == 0, result.output
    assert "v0002" in result.output
    assert "shadow+approval" in result.output
    assert "shadow_passed: step shadow_passed" in result.output


def test_approve_records_who_and_why_and_the_history_shows_it(registry: ModelRegistry) -> None:
    approved = berg(registry, "approve", "fraud", "v0002", "--reason", "shadow looks fine", "--by", "alice")
    assert approved.exit_code == 0, approved.output
    assert "approved fraud v0002 by alice" in approved.output

    shown = berg(registry, "rollout", "fraud", "v0002")

    assert shown.exit_code == 0, shown.output
    assert "Rollout of fraud v0002: approved" in shown.output
    assert "alice" in shown.output
    assert "shadow looks fine" in shown.output
    assert registry.rollout_history("fraud", "v0002")[-1].actor == "alice"
    assert "No version is waiting for approval." in berg(registry, "pending", "fraud").output


def test_reject_defaults_to_the_os_user(registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.getpass, "getuser", lambda: "bob")

    result = berg(registry, "reject", "fraud", "v0002", "--reason", "not before the sale")

    assert result.exit_code == 0, result.output
    last = registry.rollout_history("fraud", "v0002")[-1]
    assert (last.action, last.actor, last.reason) == ("rejected", "bob", "not before the sale")
    production = registry.alias("fraud", "production")
    assert production is not None
    assert production.version == "v0001"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("approve", "fraud", "v0001", "--reason", "r", "--by", "a"),
            "cannot be marked approved: it is not a candidate",
        ),
        (("approve", "fraud", "v0009", "--reason", "r", "--by", "a"), "model 'fraud' has no version v0009"),
        (("approve", "fraud", "v0002", "--reason", " ", "--by", "a"), "say why: a review needs a reason"),
        (("approve", "fraud", "v0002", "--reason", "r", "--by", "no spaces"), "use --by NAME"),
        (("rollout", "nope", "v0001"), "no model named 'nope'"),
    ],
)
def test_errors_say_what_to_do_next(registry: ModelRegistry, args: tuple[str, ...], message: str) -> None:
    result = berg(registry, *args)

    assert result.exit_code == 1
    assert message in result.output


def test_approving_twice_is_refused_with_where_it_stands(registry: ModelRegistry) -> None:
    assert berg(registry, "approve", "fraud", "v0002", "--reason", "ok", "--by", "alice").exit_code == 0

    again = berg(registry, "reject", "fraud", "v0002", "--reason", "no", "--by", "bob")

    assert again.exit_code == 1
    assert "cannot be marked rejected: it is approved" in again.output
    assert "berg models rollout fraud v0002" in again.output


def test_a_version_without_a_rollout_says_so(registry: ModelRegistry) -> None:
    result = berg(registry, "rollout", "fraud", "v0001")

    assert result.exit_code == 0
    assert "never a candidate" in result.output
