"""The registry on the local disk: the embedded default (see :mod:`berg.registry.storage`)."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from berg.registry.storage import FileSource

__all__ = ["LocalStore"]

STAGING = ".staging"
"""Folder under the root where versions are written before they are renamed into place (same filesystem)."""


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _copy_synced(source: FileSource, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        _write_synced(target, source)
        return
    shutil.copyfile(source, target)
    with target.open("rb+") as handle:
        os.fsync(handle.fileno())


def _sync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _temp_beside(path: Path) -> Path:
    # Hidden, so listings of the folder skip it; in the same folder, so the rename is atomic.
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


class LocalStore:
    """Keys are paths under ``root``; atomicity comes from ``os.link``, ``os.replace`` and ``os.rename``."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().absolute()

    @property
    def root_uri(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def open_read(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, key: str) -> list[str]:
        try:
            return sorted(os.listdir(self._path(key)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def create(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = _temp_beside(path)
        try:
            _write_synced(temp, data)
            # link() fails if the name exists, and the name appears with its whole content.
            os.link(temp, path)
        except FileExistsError:
            return False
        finally:
            temp.unlink(missing_ok=True)
        _sync_dir(path.parent)
        return True

    def replace(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = _temp_beside(path)
        try:
            _write_synced(temp, data)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _sync_dir(path.parent)

    def publish(self, folder: str, files: Mapping[str, FileSource], marker: str, marker_data: bytes) -> None:
        target = self._path(folder)
        staging = self.root / STAGING / uuid.uuid4().hex
        try:
            for name, source in files.items():
                _copy_synced(source, staging / name)
            _write_synced(staging / marker, marker_data)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, target)
            except OSError as error:
                if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise FileExistsError(errno.EEXIST, "already published", str(target)) from None
                raise
            _sync_dir(target.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def local_path(self, key: str) -> Path | None:
        return self._path(key)
