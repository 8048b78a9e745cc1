"""Online feature lookups through Feast's own online store, planned once per process.

Feast's ``FeatureStore.get_online_features`` resolves the feature references against
the registry on every call, and Feast 0.67 caches that resolution in process-wide
one-entry caches: two stores taking turns (one per lookup thread) empty them on every
switch, and each read then rebuilds the feature views from protos (about 1.6 ms instead
of 0.34 ms). So serving opens **one** ``FeatureStore`` per process, reads the plan from
its registry once (each view of the feature set, as the registry defines it), and reads
rows with the online store's own ``online_read`` (``online_read_async`` where the store
has one: Redis), with the entity keys built directly. Feast stays the source of truth:
the views come from its registry, the rows from its online store classes, the keys in
its serialization; only the per-call planning is skipped.

Where the read runs: with ``threads=0``, on the event loop (the store's async read when
it has one; SQLite's blocking read otherwise, a local file read of tens of
microseconds, cheaper than the hop to a thread and back); with ``threads>0``, on that
many threads sharing the one store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from berg_serving.features import ViewRead

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.infra.online_stores.online_store import OnlineStore
    from feast.protos.feast.types.Value_pb2 import Value

__all__ = ["FeastOnlineFeatures", "OnlineFeatureSource", "OnlinePlanError"]

log = logging.getLogger(__name__)

OnlineValues = Mapping[str, Sequence[object]]
"""Feature name to one value per entity row (None where the store has none): ``OnlineResponse.to_dict()``."""

_Rows = list[tuple[Any, dict[str, "Value"] | None]]


class OnlinePlanError(RuntimeError):
    """The registry does not define what the feature set reads (the features service applies it when it starts)."""


class OnlineFeatureSource(Protocol):
    """Where the transformer reads the stored features of the use case's entities."""

    async def lookup(self, entity_rows: list[dict[str, str]]) -> OnlineValues:
        """The stored features for each entity row (each entity's key)."""
        ...

    async def close(self) -> None:
        """Release what the source holds (on the serving loop, after the last lookup)."""
        ...


def _decode(value: Value | None) -> object:
    """A Feast ``Value`` proto as Python (None when unset)."""
    if value is None:
        return None
    kind = value.WhichOneof("val")
    return None if kind is None or kind == "null_val" else getattr(value, kind)


class FeastOnlineFeatures:
    """Reads ``reads`` from Feast's online store through one ``FeatureStore``, planned at construction.

    Args:
        store: the process's one FeatureStore (its registry defines the views; its config the online store).
        reads: what each lookup reads (``FeatureAssembler.online_reads``).
        threads: 0 to read on the event loop, otherwise the lookup threads.

    Raises:
        OnlinePlanError: the registry lacks a view, or a view lacks a feature.
    """

    def __init__(self, store: FeatureStore, reads: Sequence[ViewRead], threads: int) -> None:
        from feast.errors import FeatureViewNotFoundException
        from feast.infra.online_stores.helpers import get_online_store_from_config
        from feast.infra.online_stores.online_store import OnlineStore

        self._store = store
        self._config = store.config
        self._online: OnlineStore = get_online_store_from_config(store.config.online_store)
        self._plan: list[tuple[ViewRead, FeatureView]] = []
        for read in reads:
            try:
                view = store.get_feature_view(read.view)
            except FeatureViewNotFoundException:
                raise OnlinePlanError(
                    f"the feature registry has no view {read.view!r}: start the features service first (it applies "
                    "the use case's definitions), or check BERG_SERVING_FEAST_PROFILE"
                ) from None
            missing = sorted(set(read.features) - {field.name for field in view.features})
            if missing:
                raise OnlinePlanError(
                    f"the registry's view {read.view!r} has no features {missing}: the features service applies "
                    "the use case's definitions when it starts; restart it with this version of the use case"
                )
            self._plan.append((read, view))
        self._asynchronous = type(self._online).online_read_async is not OnlineStore.online_read_async
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        self._entity_key, self._value = EntityKey, Value  # per request: no import statement on the hot path
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="feast-lookup") if threads else None

    def _keys(self, read: ViewRead, entity_rows: list[dict[str, str]]) -> list[Any]:
        key, value = self._entity_key, self._value
        return [key(join_keys=[read.key], entity_values=[value(string_val=row[read.key])]) for row in entity_rows]

    @staticmethod
    def _collect(values: dict[str, list[object]], read: ViewRead, rows: _Rows) -> None:
        for name in read.features:
            values[name] = [_decode(data.get(name)) if data else None for _, data in rows]

    def fetch(self, entity_rows: list[dict[str, str]]) -> dict[str, list[object]]:
        """The blocking read, on the calling thread."""
        values: dict[str, list[object]] = {}
        for read, view in self._plan:
            # A fresh list of names each call: Redis' store appends its timestamp field to the list it is given.
            rows = self._online.online_read(self._config, view, self._keys(read, entity_rows), list(read.features))
            self._collect(values, read, rows)
        return values

    async def _fetch_async(self, entity_rows: list[dict[str, str]]) -> dict[str, list[object]]:
        reads = [
            self._online.online_read_async(self._config, view, self._keys(read, entity_rows), list(read.features))
            for read, view in self._plan
        ]
        values: dict[str, list[object]] = {}
        for (read, _), rows in zip(self._plan, await asyncio.gather(*reads), strict=True):
            self._collect(values, read, rows)
        return values

    async def lookup(self, entity_rows: list[dict[str, str]]) -> OnlineValues:
        """The rows of ``entity_rows``: on a lookup thread, or on the event loop (see the module)."""
        if self._executor is not None:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self.fetch, entity_rows)
        if self._asynchronous:
            return await self._fetch_async(entity_rows)
        return self.fetch(entity_rows)

    def warm_up(self, entity_rows: list[dict[str, str]]) -> None:
        """Open the online store and read once (blocking; at start-up), so the first request does not pay for it.

        Redis' async client binds to the serving loop and connects on its first read."""
        self.fetch(entity_rows)

    async def close(self) -> None:
        """Wait for lookups in progress, then release the online store's clients and the registry's connections.

        On the loop the lookups ran on: Redis' async client is bound to it."""
        from berg.features.store import close_store

        if self._executor is not None:
            self._executor.shutdown(wait=True)
        await self._online.close()
        # Feast 0.67's Redis store opens an async client on its first async read and has no close for it (its
        # ``close`` is the base class's no-op): left to the garbage collector, its connection outlives the loop.
        client = getattr(self._online, "_client_async", None)
        if client is not None:
            await client.aclose()
        close_store(self._store)
