"""Which storage a registry root gets: the local disk, or any filesystem fsspec knows.

The interface the implementations share is in :mod:`berg.registry.storage`; this
module picks one, so the implementations import the interface and nothing imports
back the other way.
"""

from __future__ import annotations

from pathlib import Path

from berg.registry._fsspec import FsspecStore
from berg.registry._local import LocalStore
from berg.registry.storage import RegistryStore

__all__ = ["open_store"]


def open_store(root_uri: str | Path) -> RegistryStore:
    """The store for ``root_uri``: a local path (or ``file://`` URI), or any URI fsspec understands.

    fsspec and the protocol's package (``s3fs`` for ``s3://``, ``gcsfs`` for ``gs://``) are
    imported only when an :class:`FsspecStore` is opened, so the embedded default needs neither.
    """
    if isinstance(root_uri, Path):
        return LocalStore(root_uri)
    if root_uri.startswith("file://"):
        return LocalStore(Path(root_uri.removeprefix("file://")))
    if "://" not in root_uri:
        return LocalStore(Path(root_uri))
    return FsspecStore(root_uri)
