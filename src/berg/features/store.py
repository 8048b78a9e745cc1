"""Open Berg's feature store for a profile, and get it ready to use.

A profile is a ``feature_store.yaml`` of ``feature_repo/`` (the embedded default,
or ``cluster/feature_store.yaml``); its ``${VARS}`` come from the environment, as
with Feast's own CLI. :func:`prepare_store` does what ``feast apply`` does, plus
what Berg's append-only offline store needs: each source folder holds a schema part.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
from feast import FeatureStore, FileSource

from berg.features.definitions import (
    OFFLINE_ROOT_ENV,
    STATE_DIR_ENV,
    FeatureDefinitions,
    build_definitions,
    source_schema,
)
from berg.features.parquet_parts import SCHEMA_PART, source_directory, write_part
from berg.features.schema import MERCHANT_FEATURES, MERCHANT_KEY, USER_FEATURES, USER_KEY

__all__ = [
    "CLUSTER_PROFILE",
    "EMBEDDED_PROFILE",
    "close_store",
    "feast_environment",
    "offline_root",
    "open_store",
    "prepare_store",
    "repo_dir",
]

EMBEDDED_PROFILE = "feature_store.yaml"
CLUSTER_PROFILE = "cluster/feature_store.yaml"


def repo_dir() -> Path:
    """``feature_repo/`` of this checkout (or ``$BERG_FEATURE_REPO`` in an image)."""
    configured = os.environ.get("BERG_FEATURE_REPO")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "feature_repo"


@contextmanager
def feast_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set the variables a profile's ``${VARS}`` name, for the duration of a block."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def open_store(profile: str = EMBEDDED_PROFILE, repo: Path | None = None) -> FeatureStore:
    """A :class:`FeatureStore` over ``repo`` (``feature_repo/``) with the given profile yaml.

    For the embedded profile, ``$BERG_STATE_DIR`` must be set and its ``feast/`` folder
    is created.
    """
    repo = repo or repo_dir()
    if profile == EMBEDDED_PROFILE:
        state = os.environ.get(STATE_DIR_ENV)
        if not state:
            raise RuntimeError(f"set {STATE_DIR_ENV} (the state directory, e.g. $PWD/.berg) to open the feature store")
        (Path(state) / "feast").mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(repo), fs_yaml_file=repo / profile)


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


def prepare_store(store: FeatureStore, offline_root: str) -> FeatureDefinitions:
    """Register Berg's definitions (idempotent, like ``feast apply``) and seed the offline sources."""
    definitions = build_definitions(offline_root)
    _ensure_schema_part(store, definitions.user_source, source_schema(USER_KEY, USER_FEATURES))
    _ensure_schema_part(store, definitions.merchant_source, source_schema(MERCHANT_KEY, MERCHANT_FEATURES))
    store.apply(definitions.objects())
    return definitions


def offline_root(state_dir: Path) -> str:
    """The embedded profile's offline root under a state directory."""
    return os.environ.get(OFFLINE_ROOT_ENV) or str(state_dir.absolute() / "feast" / "offline")
