"""``berg runs`` lists the runs of the use case's model unless ``--model`` names another."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from berg_app.lifecycle.probes import ControllerClient
from berg_app.runs_cli import runs_app
from tests.use_cases import CHURN, FRAUD, installed

pytestmark = pytest.mark.unit


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """The models the controller is asked about (no controller: the client records the question)."""
    monkeypatch.setenv("BERG_STATE_DIR", str(tmp_path))
    models: list[str] = []

    def runs(_: ControllerClient, model: str) -> list[dict[str, object]]:
        models.append(model)
        return []

    monkeypatch.setattr(ControllerClient, "runs", runs)
    return models


def test_the_runs_listed_are_the_use_case_s_model_s_by_default(
    monkeypatch: pytest.MonkeyPatch, asked: list[str]
) -> None:
    installed(monkeypatch, CHURN)
    listed = CliRunner().invoke(runs_app, [])
    assert listed.exit_code == 0, listed.output
    assert "No pipeline runs of churn yet." in listed.output
    installed(monkeypatch, FRAUD, CHURN)
    monkeypatch.setenv("BERG_USE_CASE", "fraud")
    assert CliRunner().invoke(runs_app, []).exit_code == 0
    assert CliRunner().invoke(runs_app, ["--model", "my-model"]).exit_code == 0
    assert asked == ["churn", "fraud", "my-model"]


def test_without_a_use_case_to_name_the_model_it_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, asked: list[str]
) -> None:
    installed(monkeypatch, FRAUD, CHURN)
    listed = CliRunner().invoke(runs_app, [])
    assert listed.exit_code == 1
    assert listed.output.startswith("error: BERG_USE_CASE: 2 use cases are installed (churn, fraud)")
    assert asked == []
    assert CliRunner().invoke(runs_app, ["--model", "my-model"]).exit_code == 0, "a named model needs no use case"
