"""Whether a stored file is the one registered: its size and sha256 against the version's metadata (pure, no I/O).

:meth:`~berg.registry.ModelRegistry.register` records each file's size and sha256 in the
version's ``metadata.json`` (:class:`~berg.registry.StoredFile`); a reader that loads a file
checks it against that record with :func:`measure` and :func:`check_file`, so a file swapped
or corrupted under a registered version is refused instead of served.
:meth:`~berg.registry.ModelRegistry.read_file` is the reader.

What this catches: a file changed after registration while ``metadata.json`` was not. A writer
that rewrites ``metadata.json`` as well passes; that needs the readers' credentials to be
read-only, not a check here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from berg.registry.errors import IntegrityError
from berg.registry.metadata import StoredFile

__all__ = ["check_file", "measure"]


def measure(path: str, blocks: Iterable[bytes], *, keep_bytes: int = 0) -> tuple[StoredFile, bytes]:
    """The size and sha256 of the bytes in ``blocks``, hashed as they come, and the first ``keep_bytes`` of them.

    Only ``keep_bytes`` are held in memory: a file that grew after registration is hashed to its end
    (so the refusal can name its digest) without being buffered whole.

    Args:
        path: the file's path relative to its version's folder, as recorded (``model/model.bst``).
        blocks: the file's content, in order.
        keep_bytes: how many leading bytes to return (the recorded size, for a reader that will use them).
    """
    digest = hashlib.sha256()
    size = 0
    kept = bytearray()
    for block in blocks:
        digest.update(block)
        size += len(block)
        if len(kept) < keep_bytes:
            kept += block[: keep_bytes - len(kept)]
    return StoredFile(path=path, size_bytes=size, sha256=digest.hexdigest()), bytes(kept)


def check_file(model: str, version: str, location: str, recorded: StoredFile, found: StoredFile | None) -> None:
    """Refuse ``found`` (None: no file) unless it is the file ``recorded`` at registration.

    Args:
        model: the model's name, for the message.
        version: the version id, for the message.
        location: where the file was read (a path or URI), for the message.
        recorded: the file as the version's metadata describes it.
        found: what was read there, from :func:`measure`.

    Raises:
        IntegrityError: the file is missing, or its size or sha256 differ from the record.
    """
    if found is not None and (found.size_bytes, found.sha256) == (recorded.size_bytes, recorded.sha256):
        return
    fix = (
        "it is not loaded. Restore the registered file (the one with the registered sha256) from a backup, or "
        "register the model again as a new version and promote that; and find out who could write the storage"
    )
    if found is None:
        what = f"is missing from {location} (registered: {recorded.size_bytes} bytes, sha256 {recorded.sha256})"
    else:
        what = (
            f"at {location} is not the file registered: registered {recorded.size_bytes} bytes, sha256 "
            f"{recorded.sha256}; found {found.size_bytes} bytes, sha256 {found.sha256}. It was changed after "
            "registration (tampered with or corrupted)"
        )
    raise IntegrityError(
        f"{recorded.path} of model {model!r} {version} {what}; {fix}",
        model=model,
        version=version,
        path=recorded.path,
        recorded=recorded,
        found=found,
    )
