"""A challenger's way to production after the gate (pure logic): its rollout events.

Under a policy other than ``offline`` the pipeline registers a challenger that passed
the gate without promoting it, and records ``candidate``. From there the retraining
controller moves it through the policy's stages (``shadow``, then ``approval``) and a
person approves or rejects it; every step is one :class:`RolloutEvent` appended to the
version's rollout history in the registry (who, when, why), never rewritten. The
stage a version is in is read from its last event (:func:`stage_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from berg.contracts._types import UtcDatetime

__all__ = [
    "ACTOR_PATTERN",
    "FINAL_ACTIONS",
    "RolloutAction",
    "RolloutEvent",
    "RolloutStageName",
    "stage_of",
]

RolloutAction = Literal[
    "candidate",
    "shadow_started",
    "shadow_passed",
    "shadow_failed",
    "awaiting_approval",
    "approved",
    "rejected",
    "promoted",
    "superseded",
    "rolled_back",
]
"""What happened to the version: each action is one step of its rollout."""

RolloutStageName = Literal[
    "candidate",
    "shadow",
    "awaiting_approval",
    "approved",
    "promoted",
    "rejected",
    "failed",
    "superseded",
    "rolled_back",
]

FINAL_ACTIONS: frozenset[str] = frozenset({"shadow_failed", "rejected", "superseded", "rolled_back"})
"""After one of these the version's rollout is over (``promoted`` is followed by the watch, which may roll back)."""

ACTOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9@._:/+-]{0,127}$"
"""Who: a user name, an e-mail address or a service account (``system:serviceaccount:berg:controller``)."""

_STAGE_AFTER: dict[str, RolloutStageName] = {
    "candidate": "candidate",
    "shadow_started": "shadow",
    "shadow_passed": "candidate",
    "shadow_failed": "failed",
    "awaiting_approval": "awaiting_approval",
    "approved": "approved",
    "rejected": "rejected",
    "promoted": "promoted",
    "superseded": "superseded",
    "rolled_back": "rolled_back",
}


class RolloutEvent(BaseModel):
    """One step of a version's rollout: what, when, who and why."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    action: RolloutAction
    at: UtcDatetime
    actor: str = Field(pattern=ACTOR_PATTERN)
    """Who took the step: the controller, the pipeline, or the person who approved or rejected."""
    reason: str = Field(default="", max_length=2000)
    policy: str = Field(default="", max_length=100)
    """The policy the version is rolled out under (``shadow+approval``), as the candidate event recorded it."""
    details: dict[str, JsonValue] = Field(default_factory=dict)
    """Figures behind the step (shadow counts and quality, the breach that rolled it back, ...)."""


def stage_of(history: Sequence[RolloutEvent]) -> RolloutStageName | None:
    """The stage a version is in after its events (oldest first); None when it has none (never a candidate)."""
    return _STAGE_AFTER[history[-1].action] if history else None
