"""Online feature lookups from Feast, off the event loop.

Feast's online read is blocking (SQLite or Redis I/O, then protobuf decoding),
so :class:`FeastOnlineFeatures` runs it on its own small thread pool; each of its
threads opens its own :class:`~feast.FeatureStore` (Feast's objects are not
shared across threads). Its threads open their stores and read once before the
server reports ready, so the first requests do not pay for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from feast import FeatureStore

__all__ = ["FeastOnlineFeatures", "OnlineFeatureSource"]

log = logging.getLogger(__name__)

OnlineValues = Mapping[str, Sequence[object]]
"""Feature name to one value per entity row (None where the store has none): ``OnlineResponse.to_dict()``."""


class OnlineFeatureSource(Protocol):
    """Where the transformer reads the stored features of the use case's entities."""

    async def lookup(self, entity_rows: list[dict[str, str]]) -> OnlineValues:
        """The stored features for each entity row (each entity's key)."""
        ...

    def close(self) -> None:
        """Release what the source holds."""
        ...


class FeastOnlineFeatures:
    """Reads ``features`` from Feast's online store on a thread pool.

    Args:
        open_store: builds one FeatureStore (called once per lookup thread).
        features: the references to read (``FeatureAssembler.online_refs``).
        threads: lookup threads.
    """

    def __init__(self, open_store: Callable[[], FeatureStore], features: Sequence[str], threads: int) -> None:
        self._open_store = open_store
        self._threads = threads
        self._local = threading.local()
        self._stores: list[FeatureStore] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="feast-lookup")
        self._features = list(features)

    def _store(self) -> FeatureStore:
        store: FeatureStore | None = getattr(self._local, "store", None)
        if store is None:
            store = self._open_store()
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def fetch(self, entity_rows: list[dict[str, str]]) -> dict[str, list[object]]:
        """The blocking read, on the calling thread."""
        response = self._store().get_online_features(features=self._features, entity_rows=entity_rows)
        values: dict[str, list[object]] = response.to_dict()
        return values

    async def lookup(self, entity_rows: list[dict[str, str]]) -> OnlineValues:
        """:meth:`fetch` on a lookup thread; the event loop serves other requests meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.fetch, entity_rows)

    def warm_up(self, entity_rows: list[dict[str, str]], timeout_s: float = 120.0) -> None:
        """Make every lookup thread open its store and read once (blocking; at start-up)."""
        barrier = threading.Barrier(self._threads, timeout=timeout_s)

        def open_and_read() -> None:
            barrier.wait()  # one task per thread: each waits until all threads exist
            self.fetch(entity_rows)

        for future in [self._executor.submit(open_and_read) for _ in range(self._threads)]:
            future.result(timeout=timeout_s)

    def close(self) -> None:
        """Wait for lookups in progress, then close every store."""
        from berg.features.store import close_store

        self._executor.shutdown(wait=True)
        with self._lock:
            stores, self._stores = self._stores, []
        for store in stores:
            close_store(store)
