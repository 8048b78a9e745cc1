"""The controller process decides on the version in production (``python -m berg_controller``, a real registry).

After a promotion the retired champion's drift series go stale and its alerts
keep firing for a while: an Alertmanager notification about a version that is
not the one the registry's ``production`` alias names starts nothing and is
recorded with why; the same alert about the production version starts a run.
While the registry cannot be read the webhook answers 503 and stores nothing, so
Alertmanager delivers again and the retry is decided on facts, never on a guess.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from services.controller.tests.helpers import (
    TOKEN,
    alert,
    controller_process,
    count_starts,
    register_versions,
    webhook,
)

from berg.registry import ModelRegistry, VersionMetadata
from tests.helpers import wait_for
from tests.processes import ServiceProcess

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ServiceProcess]:
    assert register_versions(tmp_path / "registry", "fraud", 2, production="v0002") == ["v0001", "v0002"]
    with controller_process(tmp_path, sleep_s=0.5, WEBHOOK_TOKEN=TOKEN) as process:
        process.start()
        process.wait_ready()
        yield process


def post(client: httpx.Client, process: ServiceProcess, payload: dict[str, object]) -> httpx.Response:
    return client.post(f"http://127.0.0.1:{process.port}/alerts", json=payload, headers=AUTH)


def test_an_alert_about_the_retired_champion_starts_nothing(controller: ServiceProcess, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{controller.port}"
    with httpx.Client(timeout=30) as client:
        retired = post(client, controller, webhook(alert(version="v0001")))
        assert retired.status_code == 200, controller.log_tail()
        (decision,) = retired.json()["decisions"]
        assert decision["decision"] == "not_production"
        assert retired.json()["runs_started"] == []
        (trigger,) = client.get(f"{url}/triggers").json()
        assert (trigger["decision"], trigger["alertname"]) == ("not_production", "FeatureDriftHigh")
        assert "fraud v0001" in trigger["reason"]
        assert "v0002 is in production" in trigger["reason"]
        assert client.get(f"{url}/runs").json() == []
        assert (
            controller.metric(
                "berg_controller_triggers_total", {"model": "fraud", "source": "alert", "decision": "not_production"}
            )
            == 1
        )

        champion = post(client, controller, webhook(alert(version="v0002")))
        assert champion.status_code == 200
        assert [d["decision"] for d in champion.json()["decisions"]] == ["started"]
        (run,) = client.get(f"{url}/runs").json()
        assert run["id"] == champion.json()["runs_started"][0]
    wait_for(lambda: count_starts(tmp_path / "starts.txt") == 1, 300, "the production version's run to start")
    assert count_starts(tmp_path / "starts.txt") == 1


def test_an_unreadable_registry_answers_503_and_the_retry_decides(controller: ServiceProcess, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{controller.port}"
    aliases = tmp_path / "registry" / "fraud" / "aliases"
    moved = tmp_path / "aliases-away"
    payload = webhook(alert(version="v0002"))
    with httpx.Client(timeout=30) as client:
        shutil.move(aliases, moved)
        aliases.write_text("not a folder: reading the production pointer fails")
        try:
            refused = post(client, controller, payload)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "5"
            assert refused.json()["detail"] == "the model registry is unavailable; try again later"
            assert client.get(f"{url}/triggers").json() == []  # nothing stored: the retry is decided afresh
            assert client.get(f"{url}/runs").json() == []
            # Only a firing alert that names a version needs the registry: a resolution is decided at once.
            resolved = post(client, controller, webhook(alert(version="v0001", status="resolved")))
            assert resolved.status_code == 200
            assert [d["decision"] for d in resolved.json()["decisions"]] == ["ignored"]
        finally:
            aliases.unlink()
            shutil.move(moved, aliases)
        retried = post(client, controller, payload)  # Alertmanager delivers again
        assert retried.status_code == 200
        assert [d["decision"] for d in retried.json()["decisions"]] == ["started"]
        (run,) = client.get(f"{url}/runs").json()
        assert run["id"] == retried.json()["runs_started"][0]
    wait_for(lambda: count_starts(tmp_path / "starts.txt") == 1, 300, "the retried alert's run to start")


def test_while_a_challenger_is_on_its_way_alerts_start_no_run_and_a_person_still_can(
    controller: ServiceProcess, tmp_path: Path
) -> None:
    """A candidate waiting in its rollout answers the drift already: another run would train on the same data."""
    url = f"http://127.0.0.1:{controller.port}"
    registry = ModelRegistry(tmp_path / "registry")
    champion = registry.get("fraud", "v0002")
    metadata = VersionMetadata.model_validate(
        {key: value for key, value in champion.model_dump().items() if key in VersionMetadata.model_fields}
    )
    challenger = registry.register("fraud", registry.local_path("fraud", "v0002"), metadata).version
    registry.record_rollout("fraud", challenger, "candidate", actor="pipeline", policy="approval", reason="gate")
    registry.record_rollout("fraud", challenger, "awaiting_approval", actor="berg-controller", reason="a person")
    with httpx.Client(timeout=30) as client:
        held = post(client, controller, webhook(alert(version="v0002")))
        assert held.status_code == 200, controller.log_tail()
        (decision,) = held.json()["decisions"]
        assert decision["decision"] == "rollout_pending"
        assert f"fraud {challenger} is on its way to production" in decision["reason"]
        assert held.json()["runs_started"] == []
        assert client.get(f"{url}/runs").json() == []
        manual = client.post(f"{url}/runs", json={"model": "fraud", "reason": "retrain anyway"}, headers=AUTH)
        assert manual.status_code == 202, manual.text
    wait_for(lambda: count_starts(tmp_path / "starts.txt") == 1, 300, "the manual run to start")
