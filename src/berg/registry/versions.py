"""Version ids: ``v0001``, ``v0002``... monotonic per model, sorted by number.

A counter reads well on a command line (``berg models promote my-model v0007``)
and in a ``storageUri``, and its order is the order of registration. Writers
never coordinate except through the store: a writer reserves the next number
with an exclusive create (see :mod:`berg.registry.registry`) and moves on to
the number after it if another writer got there first, so two writers never
share an id. A writer that dies after reserving leaves a gap, never a reused
id. Ids stay sortable past ``v9999`` because code sorts by :func:`version_number`,
never by the string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["VERSION_PATTERN", "format_version", "is_version", "next_version", "version_number"]

VERSION_PATTERN = re.compile(r"^v(\d{4,9})$")
"""``v`` and at least four digits."""


def is_version(text: str) -> bool:
    """Whether ``text`` is a well-formed version id."""
    return VERSION_PATTERN.fullmatch(text) is not None


def version_number(version: str) -> int:
    """The number of a version id: ``version_number("v0012") == 12``.

    Raises:
        ValueError: ``version`` is not a version id.
    """
    match = VERSION_PATTERN.fullmatch(version)
    if match is None:
        raise ValueError(f"{version!r} is not a version id (expected v0001, v0002, ...)")
    return int(match.group(1))


def format_version(number: int) -> str:
    """The id of version ``number`` (from 1): ``format_version(12) == "v0012"``."""
    if number < 1:
        raise ValueError(f"version numbers start at 1, got {number}")
    return f"v{number:04d}"


def next_version(taken: Iterable[str]) -> str:
    """The id after the highest of ``taken`` (ids that are not versions are ignored); ``v0001`` for none."""
    numbers = [version_number(v) for v in taken if is_version(v)]
    return format_version(max(numbers, default=0) + 1)
