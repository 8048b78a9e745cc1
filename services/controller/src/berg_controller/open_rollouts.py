"""Which versions of a model are still on their way to production, without rereading the finished ones.

Every version that ever had a rollout keeps its history in the registry, so reading
all of them each tick (and for each automatic trigger) costs one listing and one read
per event of every version ever trained, which on object storage grows with the
model's age. A finished rollout never reopens: after ``promoted``, ``rejected``,
``shadow_failed`` or ``superseded`` the only step left is the watch's
``rolled_back``, itself a finished one. So each process remembers the versions it saw
finished and reads only the others' histories: one listing per call, and one history
read per version still under way.
"""

from __future__ import annotations

import threading

from berg.registry import ModelRegistry, RolloutEvent
from berg_controller.rollout import is_unfinished

__all__ = ["OpenRollouts"]


class OpenRollouts:
    """``model``'s unfinished rollouts, read from ``registry``; safe to share between threads."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry
        self._finished: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def unfinished(self, model: str) -> list[tuple[str, list[RolloutEvent]]]:
        """``model``'s versions still on their way to production, each with its history, oldest first.

        Raises:
            Whatever the registry's storage raises while listing or reading.
        """
        with self._lock:
            finished = set(self._finished.get(model, ()))
        found: list[tuple[str, list[RolloutEvent]]] = []
        newly_finished: set[str] = set()
        for version in self._registry.rollout_versions(model):
            if version in finished:
                continue
            history = self._registry.rollout_history(model, version)
            if is_unfinished(history):
                found.append((version, history))
            elif history:
                newly_finished.add(version)
        if newly_finished:
            with self._lock:
                self._finished.setdefault(model, set()).update(newly_finished)
        return found
