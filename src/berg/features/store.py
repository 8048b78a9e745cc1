"""Open Berg's feature store for a profile, and get it ready to use.

A profile is a ``feature_store.yaml`` of ``feature_repo/`` (the embedded default,
or ``cluster/feature_store.yaml``); its ``${VARS}`` come from the
:class:`~berg.features.store_config.FeatureStoreConfig` the caller built from its
settings, never from the environment. :func:`prepare_store` does what ``feast apply``
does, plus what Berg's append-only offline store needs: each source folder holds a
schema part.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from feast import FeatureStore, FileSource

from berg.features.definitions import FeatureDefinitions, build_definitions, view_source_schema
from berg.features.feature_set import FeatureSet
from berg.features.parquet_parts import SCHEMA_PART, source_directory, write_part
from berg.features.profile import load_profile
from berg.features.store_config import EMBEDDED_PROFILE, STATE_DIR_VARIABLE, FeatureStoreConfig

__all__ = ["close_store", "open_store", "prepare_store"]


def open_store(config: FeatureStoreConfig) -> FeatureStore:
    """A :class:`FeatureStore` over ``config.repo`` with ``config``'s profile and variables.

    For the embedded profile, ``BERG_STATE_DIR`` must be among the variables, and its
    ``feast/`` folder is created (SQLite creates files, not folders).
    """
    if config.profile == EMBEDDED_PROFILE:
        state = config.variables.get(STATE_DIR_VARIABLE)
        if not state:
            raise RuntimeError(
                f"set {STATE_DIR_VARIABLE} (the state directory, e.g. $PWD/.berg) to open the feature store"
            )
        (Path(state) / "feast").mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(config.repo), config=load_profile(config))


def close_store(store: FeatureStore) -> None:
    """Release the SQL registry's connection pools (Feast has no close of its own)."""
    registry = store.registry
    for name in ("write_engine", "read_engine"):
        engine = getattr(registry, name, None)
        if engine is not None:
            engine.dispose()


def _ensure_schema_part(store: FeatureStore, source: FileSource, schema: pa.Schema) -> None:
    filesystem, path = source_directory(source, store.config.repo_path)
    if filesystem.get_file_info(f"{path}/{SCHEMA_PART}").type == pa.fs.FileType.NotFound:
        write_part(filesystem, path, schema.empty_table(), name=SCHEMA_PART)


def prepare_store(store: FeatureStore, features: FeatureSet, offline_root: str) -> FeatureDefinitions:
    """Register the use case's definitions (idempotent, like ``feast apply``) and seed the offline sources."""
    definitions = build_definitions(features, offline_root)
    for view in features.views:
        _ensure_schema_part(store, definitions.sources[view.name], view_source_schema(view))
    store.apply(definitions.objects())
    return definitions
