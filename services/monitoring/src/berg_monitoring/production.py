"""Which version is in production, and since when each other one is not: from the production alias's history.

Pure. The registry keeps every move of the ``production`` alias with its time
(:class:`~berg.registry.AliasMove`). A version leaves production when the alias
moves from it to another version (a promotion or a rollback) and is back when
the alias returns to it. A version out of production for longer than a grace
period falls silent: the exporter stops exporting its drift and quality series,
so alerts about it resolve. A version that never held the alias (nothing was
ever promoted, or a challenger scored on the side) is not silenced.

The times are the registry's (wall clock), read from its history rather than
from when the exporter noticed the move, so a restarted exporter silences the
same versions at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from berg.registry import AliasMove

__all__ = ["Production", "departures"]


def departures(history: Sequence[AliasMove]) -> dict[str, datetime]:
    """When each version that held the alias last left it; the version holding it now is not listed.

    Args:
        history: every move of the alias, oldest first.
    """
    left: dict[str, datetime] = {}
    current: str | None = None
    for move in history:
        if current is not None and move.version != current:
            left[current] = move.moved_at
        left.pop(move.version, None)
        current = move.version
    return left


@dataclass(frozen=True)
class Production:
    """The production alias as last read: its version, where that version's training data ends, who left it."""

    version: str | None = None
    """None while nothing is in production."""
    data_end: float | None = None
    """POSIX seconds where the production version's training window ended (the data-volume count's cut)."""
    departures: Mapping[str, datetime] = field(default_factory=dict)
    """Versions out of production, with the time each left it."""

    def silenced(self, now: datetime, grace: timedelta) -> frozenset[str]:
        """Versions out of production for at least ``grace`` at ``now``: their series are no longer exported."""
        return frozenset(version for version, left in self.departures.items() if now - left >= grace)
