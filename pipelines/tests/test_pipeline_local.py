"""The whole pipeline on this machine (kfp.local's SubprocessRunner) over simulated data.

The first run trains a model that beats the baseline and promotes it; a second
run on the same data is no better than the champion, so it is registered with
the reason and production stays where it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berg.registry.registry import ModelRegistry
from berg_pipelines.launch import run_locally
from tests.feature_world import FeatureWorld, simulated_feature_store

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    # kfp.local warns that the training image is not used by the subprocess runner (by design here).
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> FeatureWorld:
    return simulated_feature_store(tmp_path_factory.mktemp("world"), days=60)


def test_first_run_promotes_and_a_rerun_is_recorded_not_promoted(
    world: FeatureWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BERG_STATE_DIR", str(world.state_dir))
    registry_uri = str(tmp_path / "registry")
    arguments = {
        "offline_root": world.offline_root,
        "registry_uri": registry_uri,
        "model_name": "fraud",
        "window_days": 20.0,
    }

    run_locally(arguments, tmp_path / "kfp-1", world.environment)
    registry = ModelRegistry(registry_uri)
    first = registry.resolve("fraud", "production")
    assert first is not None
    assert first.version == "v0001"
    evaluation = json.loads(next((tmp_path / "kfp-1").rglob("evaluate/evaluation/evaluation.json")).read_text())
    assert evaluation["challenger"]["pr_auc"] > evaluation["baseline"]["pr_auc"] + 0.02
    assert first.lineage.parent_version is None
    assert first.lineage.feature_service == "fraud_model_v1"
    assert set(first.reference_profile) == {"features", "prediction"}
    report = next((tmp_path / "kfp-1").rglob("evaluate/report"))
    assert "Promote" in report.read_text()

    run_locally(arguments, tmp_path / "kfp-2", world.environment)
    versions = registry.versions("fraud")
    assert [v.version for v in versions] == ["v0001", "v0002"]
    second = versions[1]
    assert "champion v0001" in str(second.params["decision"])
    assert second.params["decision"].startswith("do not promote")
    assert second.lineage.parent_version == "v0001"
    production = registry.resolve("fraud", "production")
    assert production is not None
    assert production.version == "v0001", "a rejected challenger must not be promoted"
