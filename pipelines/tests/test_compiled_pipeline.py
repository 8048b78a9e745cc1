"""The committed compiled pipeline is what the source compiles to (`berg pipeline compile` rewrites it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from berg_pipelines.components import TRAINING_IMAGE
from berg_pipelines.launch import COMPILED_PIPELINE, compile_pipeline

pytestmark = pytest.mark.unit


def test_the_committed_yaml_equals_a_fresh_compile(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "training.yaml")
    assert COMPILED_PIPELINE.is_file(), "run `uv run berg pipeline compile` and commit the YAML"
    assert fresh.read_text() == COMPILED_PIPELINE.read_text(), (
        "pipelines/compiled/training.yaml is stale: run `uv run berg pipeline compile` and commit it"
    )


def test_every_step_runs_the_training_image_and_installs_nothing() -> None:
    spec = yaml.safe_load(COMPILED_PIPELINE.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 8
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == TRAINING_IMAGE, name
        command = " ".join(container["command"])
        assert "pip install" not in command, f"{name} installs packages at run time"


def test_promotion_sits_behind_the_gate() -> None:
    spec = yaml.safe_load(COMPILED_PIPELINE.read_text())
    branches = spec["components"]["comp-condition-branches-1"]["dag"]["tasks"]
    conditions = {name: task["triggerPolicy"]["condition"] for name, task in branches.items()}
    assert any("gate-promote" in c and "== true" in c and not c.startswith("!") for c in conditions.values())
    assert any(c.startswith("!") for c in conditions.values())
