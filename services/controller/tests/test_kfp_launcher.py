"""The Kubeflow launcher with the real ``kfp.Client`` against a small fake of the KFP v2beta1 REST API.

The fake (``fake_kfp.py``) answers the calls the client makes to submit a run of
the compiled pipeline YAML, find it by name, read it and terminate it; the run
states are set by the tests. No Kubeflow cluster is involved.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from services.controller.tests.fake_kfp import FakeKfp
from services.controller.tests.helpers import settings_for

from berg.problem.card import RolloutSpec
from berg.web.app import WebSettings
from berg.web.server import BackgroundServer
from berg_controller.app import build_launcher
from berg_controller.launchers import LaunchUnavailable, Progress
from berg_controller.launchers.kfp import KfpLauncher, pipeline_arguments
from berg_controller.settings import KfpLauncherSettings
from berg_controller.store import RunRecord
from tests.helpers import free_port

pytestmark = pytest.mark.integration

PACKAGE = Path(__file__).resolve().parents[3] / "pipelines" / "compiled" / "training.yaml"
RUN = RunRecord(
    id="20260101-000000-0000abcd",
    model="fraud",
    launcher="kfp",
    source="alert",
    reason="drift",
    status="pending",
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)


@pytest.fixture
def kfp_api() -> Iterator[tuple[FakeKfp, str]]:
    fake = FakeKfp()
    server = BackgroundServer(fake.app(), WebSettings(port=0))
    server.start()
    try:
        yield fake, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def launcher_for(host: str) -> KfpLauncher:
    return KfpLauncher(
        host,
        PACKAGE,
        "berg",
        lambda model: pipeline_arguments(model, "s3://berg/offline", "s3://berg/registry", {"window_days": 14.0}),
        request_timeout_s=120,  # bounds a hang only: one call to the in-process fake API
    )


def test_submits_the_compiled_pipeline_named_after_the_run(kfp_api: tuple[FakeKfp, str]) -> None:
    fake, host = kfp_api
    recorded: list[tuple[str, str]] = []
    external = launcher_for(host).start(RUN, lambda e, c: recorded.append((e, c)))
    (remote,) = fake.runs.values()
    assert recorded == [(external, f"kfp run of {PACKAGE} on {host} (experiment berg)")]
    assert remote["run_id"] == external
    assert remote["display_name"] == RUN.id
    assert remote["pipeline_spec"]["pipelineInfo"]["name"] == "berg-training"
    assert remote["runtime_config"]["parameters"] == {
        "offline_root": "s3://berg/offline",
        "registry_uri": "s3://berg/registry",
        "model_name": "fraud",
        "window_days": 14.0,
    }
    assert [e["display_name"] for e in fake.experiments.values()] == ["berg"]


def test_a_restart_adopts_the_submitted_run(kfp_api: tuple[FakeKfp, str]) -> None:
    """A controller that died after submitting, before recording the Kubeflow run id, does not submit twice."""
    fake, host = kfp_api
    first = launcher_for(host).start(RUN, lambda e, c: None)
    again = launcher_for(host).start(RUN, lambda e, c: None)
    assert again == first
    assert len(fake.runs) == 1


def test_follows_the_run_state(kfp_api: tuple[FakeKfp, str]) -> None:
    fake, host = kfp_api
    launcher = launcher_for(host)
    external = launcher.start(RUN, lambda e, c: None)
    running = RunRecord(**{**RUN.__dict__, "status": "running", "external_id": external})
    assert launcher.poll(running) == Progress("running", "PENDING")
    fake.set_state(external, "RUNNING")
    assert launcher.poll(running).state == "running"
    fake.set_state(external, "SUCCEEDED")
    assert launcher.poll(running) == Progress("succeeded", f"Kubeflow run {external} SUCCEEDED")
    fake.set_state(external, "FAILED", "train: OOMKilled")
    assert launcher.poll(running) == Progress(
        "failed", f"Kubeflow run {external} FAILED: train: OOMKilled", error="train: OOMKilled"
    )
    launcher.stop(running)
    assert fake.terminated == [external]
    unknown = RunRecord(**{**RUN.__dict__, "status": "running", "external_id": "gone"})
    assert launcher.poll(unknown).state == "failed"


def test_an_unavailable_api_keeps_the_run_pending(kfp_api: tuple[FakeKfp, str]) -> None:
    fake, host = kfp_api
    fake.fail_next_create = 1
    launcher = launcher_for(host)
    with pytest.raises(LaunchUnavailable):
        launcher.start(RUN, lambda e, c: None)
    assert launcher.start(RUN, lambda e, c: None) in fake.runs
    with pytest.raises(LaunchUnavailable, match="cannot reach"):
        launcher_for(f"http://127.0.0.1:{free_port()}").start(RUN, lambda e, c: None)


def test_a_failed_run_names_its_failed_step_and_error(kfp_api: tuple[FakeKfp, str]) -> None:
    fake, host = kfp_api
    launcher = launcher_for(host)
    external = launcher.start(RUN, lambda e, c: None)
    running = RunRecord(**{**RUN.__dict__, "status": "running", "external_id": external})
    fake.set_state(
        external,
        "FAILED",
        "a task failed",
        failed_task="validate-dataset",
        task_error="DatasetValidationError: merchant_tx_count_24h is 41% non-null\nexpected at least 95%",
    )
    progress = launcher.poll(running)
    assert (progress.state, progress.failed_step) == ("failed", "validate-dataset")
    assert progress.error == "DatasetValidationError: merchant_tx_count_24h is 41% non-null\nexpected at least 95%"
    assert progress.detail == f"Kubeflow run {external} FAILED: a task failed"
    # Without task details the run's own error is all there is.
    fake.runs[external].pop("run_details")
    assert launcher.poll(running) == Progress(
        "failed", f"Kubeflow run {external} FAILED: a task failed", error="a task failed"
    )


def test_a_run_is_given_the_controller_s_rollout_policy(kfp_api: tuple[FakeKfp, str], tmp_path: Path) -> None:
    fake, host = kfp_api
    kfp = KfpLauncherSettings(host=host, offline_root="s3://berg/offline", pipeline_package=PACKAGE)
    launcher = build_launcher(settings_for(tmp_path, launcher="kfp", kfp=kfp), RolloutSpec(policy=("approval",)))

    launcher.start(RUN, lambda _e, _c: None)

    (remote,) = fake.runs.values()
    assert remote["runtime_config"]["parameters"]["rollout_policy"] == "approval"
