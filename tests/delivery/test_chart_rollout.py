"""The chart's rollout values (BERG_ROLLOUT_*): every component reads the same ones, and empty keeps the card's."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from berg.problem.card import RolloutSpec
from berg.settings import RolloutOverrides
from tests.delivery.conftest import DEFAULT_SCENARIO, helm_template
from tests.delivery.tools import run_tool

pytestmark = pytest.mark.integration

VALUES = DEFAULT_SCENARIO


def _settings_maps(helm: str, *extra: str) -> dict[str, dict[str, str]]:
    result = run_tool(helm_template(helm, "--values", str(VALUES), *extra))
    assert result.returncode == 0, result.stderr
    documents: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return {
        doc["metadata"]["name"]: doc["data"]
        for doc in documents
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-settings")
    }


def test_empty_rollout_values_render_no_variable(helm: str) -> None:
    maps = _settings_maps(helm)
    assert maps, "no settings ConfigMap rendered"
    assert all(not any(key.startswith("BERG_ROLLOUT_") for key in data) for data in maps.values())


def test_rollout_values_reach_every_component_as_the_settings_read_them(helm: str) -> None:
    maps = _settings_maps(
        helm,
        "--set",
        "rollout.policy=shadow+approval",
        "--set",
        "rollout.shadowShare=0.25",
        "--set",
        "rollout.shadowMinPredictions=500",
        "--set",
        "rollout.watchWindowMinutes=30",
    )
    expected = {
        "BERG_ROLLOUT_POLICY": "shadow+approval",
        "BERG_ROLLOUT_SHADOW_SHARE": "0.25",
        "BERG_ROLLOUT_SHADOW_MIN_PREDICTIONS": "500",
        "BERG_ROLLOUT_WATCH_WINDOW_MINUTES": "30",
    }
    for name, data in maps.items():
        assert {key: value for key, value in data.items() if key.startswith("BERG_ROLLOUT_")} == expected, name
    # What the services read from those variables.
    overrides = RolloutOverrides.model_validate(
        {key.removeprefix("BERG_ROLLOUT_").lower(): v for key, v in expected.items()}
    )
    rollout = overrides.apply(RolloutSpec())
    assert (rollout.policy, rollout.shadow.share, rollout.shadow.min_predictions, rollout.watch.window_minutes) == (
        ("shadow", "approval"),
        0.25,
        500,
        30.0,
    )


def test_an_unknown_policy_is_refused_by_the_values_schema(helm: str) -> None:
    result = run_tool(helm_template(helm, "--values", str(VALUES), "--set", "rollout.policy=canary"))
    assert result.returncode != 0
    assert "/rollout/policy" in result.stderr


def _serving_containers(helm: str, *extra: str) -> dict[str, dict[str, Any]]:
    values = str(DEFAULT_SCENARIO.parent / "production-values.yaml")
    result = run_tool(helm_template(helm, "--values", values, *extra))
    assert result.returncode == 0, result.stderr
    documents: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    service = next(doc for doc in documents if doc["kind"] == "InferenceService")
    return {name: service["spec"][name]["containers"][0] for name in ("predictor", "transformer")}


def _registry_access(container: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The container's object-storage Secret references and variables (what reading the registry takes)."""
    secrets = sorted(source["secretRef"]["name"] for source in container.get("envFrom", []) if "secretRef" in source)
    variables = sorted(item["name"] for item in container.get("env", []) if item["name"].startswith("AWS_"))
    return secrets, variables


def test_the_transformer_reads_the_registry_only_when_the_policy_has_a_shadow_stage(helm: str) -> None:
    offline = _serving_containers(helm)
    shadowing = _serving_containers(helm, "--set", "rollout.policy=shadow+approval")
    disabled = {"name": "BERG_SERVING_SHADOW__ENABLED", "value": "false"}
    assert disabled in offline["transformer"]["env"]
    assert _registry_access(offline["transformer"]) == ([], [])
    assert disabled not in shadowing["transformer"]["env"]
    assert _registry_access(shadowing["transformer"]) == _registry_access(shadowing["predictor"])
    assert _registry_access(shadowing["predictor"]) != ([], [])
