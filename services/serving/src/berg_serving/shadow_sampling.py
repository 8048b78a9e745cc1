"""Which scored events a shadow challenger also scores: a share of them, decided per event. Pure.

The choice hashes the scored event's ``event_id``, so it is the same in every process and every
run: a test (or monitoring) can compute exactly which requests were shadowed, and a client's retry
of one event is shadowed or not as the first try was. A plain ``uuid4`` would do as a random number,
but clients may send ids of other versions (time-ordered, name-based), so the id is hashed first.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

__all__ = ["is_shadowed"]

_SPACE = float(2**64)


def is_shadowed(scored_event_id: UUID, share: float) -> bool:
    """Whether the event with this id is in the shadow's ``share`` (0 to 1) of scored events.

    Example:
        >>> is_shadowed(UUID(int=7), 1.0)
        True
    """
    if share >= 1.0:
        return True
    if share <= 0.0:
        return False
    digest = hashlib.blake2b(scored_event_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SPACE < share
