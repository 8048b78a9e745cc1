"""Unfinished rollouts are found as before, and a finished version's history is read once per process."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from services.controller.tests.helpers import register_versions

from berg.registry import ModelRegistry, RolloutEvent
from berg_controller.open_rollouts import OpenRollouts
from berg_controller.rollout import is_unfinished

pytestmark = pytest.mark.integration

MODEL = "fraud"


class CountingRegistry(ModelRegistry):
    """The real registry, counting the rollout histories read per version."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: Counter[str] = Counter()

    def rollout_history(self, name: str, version: str) -> list[RolloutEvent]:
        self.reads[version] += 1
        return super().rollout_history(name, version)


def step(registry: ModelRegistry, version: str, *actions: str) -> None:
    for action in actions:
        registry.record_rollout(MODEL, version, action, actor="test", reason=action)  # type: ignore[arg-type]


def brute_force(registry: ModelRegistry) -> list[str]:
    return [
        version
        for version in registry.rollout_versions(MODEL)
        if is_unfinished(registry.rollout_history(MODEL, version))
    ]


def test_finished_versions_are_read_once_and_unfinished_ones_every_time(tmp_path: Path) -> None:
    promoted, rejected, waiting, fresh, never = register_versions(tmp_path / "registry", MODEL, 5, production=None)
    registry = CountingRegistry(tmp_path / "registry")
    step(registry, promoted, "candidate", "shadow_started", "shadow_passed", "promoted")
    step(registry, rejected, "candidate", "awaiting_approval", "rejected")
    step(registry, waiting, "candidate", "awaiting_approval")
    step(registry, fresh, "candidate")
    rollouts = OpenRollouts(registry)

    for _ in range(3):
        found = rollouts.unfinished(MODEL)
        assert [version for version, _ in found] == [waiting, fresh] == brute_force(registry)
        assert [[e.action for e in history] for _, history in found] == [
            ["candidate", "awaiting_approval"],
            ["candidate"],
        ]
    registry.reads.clear()
    rollouts.unfinished(MODEL)
    assert registry.reads == Counter({waiting: 1, fresh: 1}), "finished histories are not read again"
    assert never not in registry.reads

    # A version that finishes drops out, and is not read again; the watch's later step changes nothing.
    step(registry, waiting, "approved", "promoted")
    assert [version for version, _ in rollouts.unfinished(MODEL)] == [fresh] == brute_force(registry)
    step(registry, waiting, "rolled_back")
    assert brute_force(registry) == [fresh]
    registry.reads.clear()
    assert [version for version, _ in rollouts.unfinished(MODEL)] == [fresh]
    assert registry.reads == Counter({fresh: 1})
