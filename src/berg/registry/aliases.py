"""Alias moves (pure logic): what a promotion or a rollback writes.

An alias (``production``, ``staging``) names one version of a model. Every move
is recorded as an :class:`AliasMove`, appended to the alias history and copied
to the alias pointer. ``previous`` is where a rollback goes: for a promotion it
is the version being replaced; for a rollback it is what the restored version
replaced when it was set. So rollbacks walk back through the promotions
(v3 -> v2 -> v1) instead of toggling between the last two, and a rollback with
no ``previous`` is refused. A ``clear`` move unsets the alias (a shadow challenger
that is done): readers see no alias, the history keeps the move.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from berg.contracts._types import UtcDatetime

__all__ = ["AliasMove", "clearing", "promotion", "rollback"]


class AliasMove(BaseModel):
    """One move of an alias: the content of the alias pointer and of each history file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    """The version the alias points at after this move."""
    moved_at: UtcDatetime
    previous: str | None
    """Where a rollback from here goes; None when there is nowhere to go back to."""
    reason: str = Field(default="", max_length=1000)
    action: Literal["promote", "rollback", "clear"] = "promote"
    """``clear``: the alias is unset; ``version`` is the one it named until then."""

    @property
    def is_set(self) -> bool:
        """Whether the alias names a version after this move (not after a ``clear``)."""
        return self.action != "clear"


def promotion(current: AliasMove | None, version: str, reason: str, now: datetime) -> AliasMove | None:
    """The move that points the alias at ``version``; None when it already does (nothing to write)."""
    if current is not None and current.is_set and current.version == version:
        return None
    previous = current.version if current is not None and current.is_set else None
    return AliasMove(version=version, moved_at=now, previous=previous, reason=reason, action="promote")


def rollback(history: Sequence[AliasMove], reason: str, now: datetime) -> AliasMove | None:
    """The move back to the current move's ``previous``; None when there is none (empty history included).

    Args:
        history: every move of the alias, oldest first; the last one is current.
    """
    if not history:
        return None
    current = history[-1]
    target = current.previous
    if target is None or not current.is_set:
        return None
    # What the target replaced when it was last set: the next rollback goes there.
    restored = next((move for move in reversed(history[:-1]) if move.version == target), None)
    previous = restored.previous if restored is not None else None
    return AliasMove(
        version=target,
        moved_at=now,
        previous=previous,
        reason=reason or f"rollback from {current.version}",
        action="rollback",
    )


def clearing(current: AliasMove | None, reason: str, now: datetime) -> AliasMove | None:
    """The move that unsets the alias; None when it is not set (nothing to write)."""
    if current is None or not current.is_set:
        return None
    return AliasMove(version=current.version, moved_at=now, previous=None, reason=reason, action="clear")
