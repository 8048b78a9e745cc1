"""The rollout routes on the real app: pending, approve and reject (who and why), and their 4xx answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from services.controller.tests.helpers import (
    TOKEN,
    InProcessController,
    register_versions,
    running_controller,
    settings_for,
)

from berg.problem.card import RolloutSpec
from berg.registry import ModelRegistry
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """``fraud`` v0001 in production; v0002 and v0003 registered, not promoted."""
    register_versions(tmp_path / "registry", "fraud", 3, production="v0001")
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def controller(tmp_path: Path, registry: ModelRegistry) -> Iterator[InProcessController]:
    del registry
    with running_controller(settings_for(tmp_path), RolloutSpec(policy=("approval",))) as running:
        yield running


def pending(controller: InProcessController) -> list[str]:
    response = controller.client.get(f"{controller.url}/rollouts/pending")
    response.raise_for_status()
    return [rollout["version"] for rollout in response.json()]


def review(controller: InProcessController, version: str, verdict: str, **body: str) -> tuple[int, object]:
    response = controller.client.post(f"{controller.url}/rollouts/fraud/{version}/{verdict}", json=body, headers=AUTH)
    return response.status_code, response.json()


def production(registry: ModelRegistry) -> str | None:
    move = registry.alias("fraud", "production")
    return None if move is None else move.version


def last_action(registry: ModelRegistry, version: str) -> str | None:
    history = registry.rollout_history("fraud", version)
    return history[-1].action if history else None


def test_approve_promotes_and_reject_leaves_production(
    controller: InProcessController, registry: ModelRegistry
) -> None:
    for version in ("v0002", "v0003"):
        registry.record_rollout("fraud", version, "candidate", actor="pipeline", policy="approval", reason="gate")
    # A newer candidate supersedes the older: only v0003 waits.
    wait_for(lambda: pending(controller) == ["v0003"], 30, "v0003 to wait for approval")
    listed = controller.client.get(f"{controller.url}/rollouts", params={"model": "fraud"}).json()
    assert [(r["version"], r["stage"]) for r in listed] == [("v0003", "awaiting_approval")]
    assert [e.action for e in registry.rollout_history("fraud", "v0002")] == ["candidate", "superseded"]

    status, body = review(controller, "v0003", "reject", by="bob", reason="not before the sale")
    assert status == 200, body
    status, body = review(controller, "v0003", "approve", by="alice", reason="changed minds")
    assert status == 409
    assert "it is rejected" in str(body)
    assert production(registry) == "v0001"
    [*_, rejected] = registry.rollout_history("fraud", "v0003")
    assert (rejected.action, rejected.actor, rejected.reason) == ("rejected", "bob", "not before the sale")


def test_an_approved_version_is_promoted_by_the_tick(controller: InProcessController, registry: ModelRegistry) -> None:
    registry.record_rollout("fraud", "v0002", "candidate", actor="pipeline", policy="approval", reason="gate")
    wait_for(lambda: pending(controller) == ["v0002"], 30, "v0002 to wait for approval")

    status, body = review(controller, "v0002", "approve", by="alice@example.com", reason="metrics look right")

    assert status == 200, body
    wait_for(lambda: last_action(registry, "v0002") == "promoted", 30, "v0002 to be promoted")
    assert production(registry) == "v0002"
    actions = [(e.action, e.actor) for e in registry.rollout_history("fraud", "v0002")]
    assert actions[-2:] == [("approved", "alice@example.com"), ("promoted", "berg-controller")]
    move = registry.alias("fraud", "production")
    assert move is not None
    assert "approved by alice@example.com (metrics look right)" in move.reason
    assert controller.runs() == []
    wait_for(
        lambda: controller.metric("berg_controller_pending_approvals", {"model": "fraud"}) == 0,
        30,
        "the pending-approvals gauge to drop to 0",
    )


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/rollouts/fraud/v0002/approve", {"by": "alice", "reason": "ok"}, {}, 401),
        ("/rollouts/fraud/v0002/approve", {"by": "alice"}, AUTH, 422),
        ("/rollouts/fraud/v0002/approve", {"by": "alice", "reason": "  "}, AUTH, 422),
        ("/rollouts/fraud/v0002/approve", {"by": "no spaces", "reason": "ok"}, AUTH, 422),
        ("/rollouts/other/v0002/approve", {"by": "alice", "reason": "ok"}, AUTH, 404),
        ("/rollouts/fraud/v0099/approve", {"by": "alice", "reason": "ok"}, AUTH, 404),
        ("/rollouts/fraud/not-a-version/reject", {"by": "alice", "reason": "ok"}, AUTH, 404),
        ("/rollouts/fraud/v0002/reject", {"by": "alice", "reason": "ok"}, AUTH, 409),
    ],
)
def test_bad_reviews_are_4xx_with_a_message(
    controller: InProcessController, path: str, body: dict[str, str], headers: dict[str, str], status: int
) -> None:
    response = controller.client.post(f"{controller.url}{path}", json=body, headers=headers)

    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_listing_an_unmanaged_model_is_404(controller: InProcessController) -> None:
    assert controller.client.get(f"{controller.url}/rollouts", params={"model": "other"}).status_code == 404
    assert controller.client.get(f"{controller.url}/rollouts/pending").json() == []
