"""Folders (0700) and files (0600) only the controller's user can read: its database, run logs and exit files.

Run logs hold what the pipeline printed and the database holds every alert's
labels and annotations; neither is for other users of the machine. Folders are
created owner-only, and only the folders created here: an existing folder (say
the ``/tmp`` an operator put the database in) is left as it is. Only the
standard library is used, so the pipeline wrapper can import it and still start fast.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO

__all__ = ["DIRECTORY_MODE", "FILE_MODE", "make_private_dirs", "open_private", "restrict_to_owner"]

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700 (existing folders are not changed)."""
    missing: list[Path] = []
    current = path.absolute()
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=DIRECTORY_MODE)
        # mkdir applies the umask; a umask that takes the owner's bits away must not leave it unusable.
        folder.chmod(DIRECTORY_MODE)


def open_private(path: Path, mode: str) -> IO[bytes]:
    """Open ``path`` for binary writing (``"wb"`` or ``"ab"``), creating it with mode 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
    if mode not in ("wb", "ab"):
        raise ValueError(f"open_private writes bytes: mode 'wb' or 'ab', not {mode!r}")
    return os.fdopen(os.open(path, flags, FILE_MODE), mode)


def restrict_to_owner(path: Path) -> None:
    """Take group and other permissions off an existing file of ours (one written before this rule)."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(stat.S_IMODE(path.stat().st_mode) & 0o700)
