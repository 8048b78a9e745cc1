"""Submitting to a Kubeflow Pipelines API: what reaches kfp.Client (no cluster here: the client is recorded)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from berg_app.cli import berg_command
from berg_pipelines import launch
from berg_pipelines.launch import COMPILED_PIPELINE, submit
from tests.use_cases import CHURN, FRAUD, installed

pytestmark = pytest.mark.unit


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def create_experiment(self, name: str) -> Any:
        self.calls.append(("create_experiment", {"name": name}))
        return SimpleNamespace(experiment_id="exp-1")

    def create_run_from_pipeline_package(self, path: str, **kwargs: Any) -> Any:
        self.calls.append(("run", {"path": path, **kwargs}))
        return SimpleNamespace(run_id="run-1")

    def create_recurring_run(self, **kwargs: Any) -> Any:
        self.calls.append(("recurring", kwargs))
        return SimpleNamespace(recurring_run_id="rec-1")


ARGUMENTS = {
    "offline_root": "s3://berg/offline",
    "registry_uri": "s3://berg/registry",
    "model_name": "my-model",
    "window_days": 30.0,
}


def test_a_run_sends_the_compiled_package_with_its_arguments() -> None:
    client = RecordingClient()
    assert submit("http://kfp", ARGUMENTS, experiment="berg", client=client) == "run-1"
    kind, call = client.calls[-1]
    assert kind == "run"
    assert call["path"] == str(COMPILED_PIPELINE)
    assert call["arguments"] == ARGUMENTS
    assert call["experiment_name"] == "berg"


def test_a_schedule_is_a_recurring_run_that_never_overlaps() -> None:
    client = RecordingClient()
    assert submit("http://kfp", ARGUMENTS, cron="0 0 3 * * *", client=client) == "rec-1"
    kind, call = client.calls[-1]
    assert kind == "recurring"
    assert call["cron_expression"] == "0 0 3 * * *"
    assert call["max_concurrency"] == 1
    assert call["params"] == ARGUMENTS


def test_berg_pipeline_compile_writes_the_yaml(tmp_path: Path) -> None:
    output = tmp_path / "pipeline.yaml"
    result = CliRunner().invoke(berg_command(), ["pipeline", "compile", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert output.read_text() == COMPILED_PIPELINE.read_text()


def test_bad_params_json_is_refused_with_the_reason() -> None:
    result = CliRunner().invoke(
        berg_command(),
        [
            "pipeline",
            "submit",
            "--host",
            "http://kfp",
            "--offline-root",
            "x",
            "--registry-uri",
            "y",
            "--params-json",
            "{nope",
        ],
    )
    assert result.exit_code != 0
    assert "not JSON" in result.output


def test_the_model_submitted_is_the_use_case_s_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    submitted: list[Any] = []
    monkeypatch.setattr(
        launch, "submit", lambda _host, arguments, **_: submitted.append(arguments["model_name"]) or "r"
    )
    command = ["pipeline", "submit", "--host", "http://kfp", "--offline-root", "x", "--registry-uri", "y"]
    installed(monkeypatch, CHURN)
    assert CliRunner().invoke(berg_command(), command).exit_code == 0
    assert CliRunner().invoke(berg_command(), [*command, "--model-name", "my-model"]).exit_code == 0
    installed(monkeypatch, FRAUD, CHURN)
    refused = CliRunner().invoke(berg_command(), command)
    assert refused.exit_code != 0
    assert "no --model-name, and no use case to name the model" in refused.output
    assert submitted == ["churn", "my-model"]
