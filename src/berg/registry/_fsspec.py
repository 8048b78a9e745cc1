"""The registry on object storage (S3, GCS, ...) or any filesystem fsspec knows (see :mod:`berg.registry.storage`)."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from berg.registry.errors import RegistryError
from berg.registry.storage import FileSource

__all__ = ["FsspecStore"]


class FsspecStore:
    """Keys are paths under the root URI's path; each object is written with one PUT."""

    def __init__(self, root_uri: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise RegistryError(
                f"the model registry at {root_uri} needs fsspec: install it with the package for its protocol "
                "(s3fs for s3://, gcsfs for gs://)"
            ) from None
        try:
            fs, path = fsspec.core.url_to_fs(root_uri)
        except (ImportError, ValueError) as error:
            raise RegistryError(f"cannot open the model registry at {root_uri}: {error}") from None
        self._fs: Any = fs
        self._root = str(path).rstrip("/")
        self._root_uri = root_uri

    @property
    def root_uri(self) -> str:
        return self._root_uri

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def read(self, key: str) -> bytes:
        return bytes(self._fs.cat_file(self._path(key)))

    def open_read(self, key: str) -> BinaryIO:
        path = self._path(key)
        # A file object reads up to the size the filesystem gives it, which may come from a cached listing made
        # before the object was replaced; the integrity check must see what is stored now.
        self._fs.invalidate_cache(path)
        handle: BinaryIO = self._fs.open(path, "rb")
        return handle

    def exists(self, key: str) -> bool:
        return bool(self._fs.exists(self._path(key)))

    def list(self, key: str) -> list[str]:
        path = self._path(key)
        # Listings are cached per filesystem instance; another writer may have added entries since.
        self._fs.invalidate_cache(path)
        try:
            entries = self._fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = {posixpath.basename(str(entry).rstrip("/")) for entry in entries}
        return sorted(name for name in names if name)

    def create(self, key: str, data: bytes) -> bool:
        try:
            self._fs.pipe_file(self._path(key), data, mode="create")
        except FileExistsError:
            return False
        return True

    def replace(self, key: str, data: bytes) -> None:
        self._fs.pipe_file(self._path(key), data)

    def publish(self, folder: str, files: Mapping[str, FileSource], marker: str, marker_data: bytes) -> None:
        marker_key = f"{folder}/{marker}"
        if self.exists(marker_key):
            raise FileExistsError(self.uri(marker_key))
        for name, source in files.items():
            path = self._path(f"{folder}/{name}")
            if isinstance(source, bytes):
                self._fs.pipe_file(path, source)
            else:
                self._fs.put_file(str(source), path)
        # The marker last: until it exists, readers do not see the folder as published.
        if not self.create(marker_key, marker_data):
            raise FileExistsError(self.uri(marker_key))

    def uri(self, key: str) -> str:
        return str(self._fs.unstrip_protocol(self._path(key)))

    def local_path(self, key: str) -> Path | None:  # noqa: ARG002 (the interface's signature)
        return None
