"""Where the registry's bytes go: a small interface with a local-disk and an fsspec implementation.

Keys are POSIX paths relative to the registry root (``my-model/versions/v0001/metadata.json``).
Each implementation provides the three atomic primitives the registry is built on:

- :meth:`RegistryStore.create`: create an object only if it does not exist, with its
  whole content visible at once (local: ``os.link`` of a complete temp file; object
  storage: fsspec's ``pipe_file(mode="create")``, a conditional PUT where the backend
  implements it, such as ``If-None-Match`` on S3);
- :meth:`RegistryStore.replace`: overwrite an object atomically (local: a temp file in
  the same folder, then ``os.replace``; object storage: one PUT, atomic per object);
- :meth:`RegistryStore.publish`: make a folder of files appear as a whole (local: write
  a staging folder, then rename it; object storage: every file first and the commit
  marker last, so readers that look for the marker never see a partial folder).

:func:`berg.registry.backends.open_store` picks the implementation for a root URI.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["FileSource", "RegistryStore"]

FileSource = Path | bytes
"""The content of a file to store: a local file to copy, or the bytes themselves."""


class RegistryStore(Protocol):
    """The storage operations the registry needs; keys are relative to the root."""

    @property
    def root_uri(self) -> str:
        """The root, as the user would write it (a path, or ``s3://bucket/prefix``)."""
        ...

    def read(self, key: str) -> bytes:
        """The object's bytes. Raises FileNotFoundError when it does not exist."""
        ...

    def open_read(self, key: str) -> BinaryIO:
        """The object as a binary stream, for reading large objects in blocks; the caller closes it.

        Raises FileNotFoundError when it does not exist."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object (or a folder holding objects) is at ``key``."""
        ...

    def list(self, key: str) -> list[str]:
        """Names (not paths) of the entries directly under folder ``key``; empty when there is none."""
        ...

    def create(self, key: str, data: bytes) -> bool:
        """Create the object only if it does not exist; False when it already does."""
        ...

    def replace(self, key: str, data: bytes) -> None:
        """Write the object atomically: a reader sees the old content or the new, never a mix."""
        ...

    def publish(self, folder: str, files: Mapping[str, FileSource], marker: str, marker_data: bytes) -> None:
        """Write ``files`` (keys relative to ``folder``) and then ``marker``; readers see all or nothing.

        Raises:
            FileExistsError: ``folder`` already holds a published ``marker``.
        """
        ...

    def uri(self, key: str) -> str:
        """The full URI of ``key`` (``file:///...``, ``s3://...``)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The path of ``key`` on the local disk; None when the store is remote."""
        ...
