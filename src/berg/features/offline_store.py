"""An append-only parquet offline store for Feast.

Feast's file offline store pushes by reading the whole parquet file, appending
the batch and writing it back: every push costs the size of the history, and two
writers lose each other's rows. Berg's feature sources are directories instead;
a push writes one new part file (written under a temporary name, then renamed), so
a push costs the size of the batch and concurrent writers never collide. Reads
(historical retrieval, materialization) are Feast's own Dask code, which reads a
directory of parquet parts as one table. Works on local paths and on object
storage (``s3://``) through pyarrow's filesystems.

Use it from ``feature_store.yaml``::

    offline_store:
      type: berg.features.offline_store.AppendOnlyFileOfflineStore
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureView, FileSource
from feast.infra.offline_stores.dask import DaskOfflineStore, DaskOfflineStoreConfig
from feast.repo_config import RepoConfig

__all__ = ["AppendOnlyFileOfflineStore", "AppendOnlyFileOfflineStoreConfig", "write_part"]

SCHEMA_PART = "part-00000000-schema.parquet"
"""An empty part holding the schema, so a source can be read before its first push."""


class AppendOnlyFileOfflineStoreConfig(DaskOfflineStoreConfig):
    """Config for :class:`AppendOnlyFileOfflineStore` (no options of its own)."""

    # Feast loads a custom offline store by this dotted path, the value of `type` in feature_store.yaml.
    type: Literal["berg.features.offline_store.AppendOnlyFileOfflineStore"] = (
        "berg.features.offline_store.AppendOnlyFileOfflineStore"  # type: ignore[assignment]
    )


def _source_dir(config: RepoConfig, source: FileSource) -> tuple[Any, str]:
    uri = FileSource.get_uri_for_file_path(repo_path=config.repo_path, uri=source.file_options.uri)
    filesystem, path = FileSource.create_filesystem_and_path(str(uri), source.file_options.s3_endpoint_override)
    if filesystem is None:
        filesystem = pa.fs.LocalFileSystem()
    return filesystem, str(path)


def write_part(filesystem: Any, directory: str, table: pa.Table, name: str | None = None) -> str:
    """Write ``table`` as one new part of the dataset in ``directory``; returns its path.

    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    filesystem.create_dir(directory, recursive=True)
    final = f"{directory}/{name or f'part-{uuid.uuid4().hex}.parquet'}"
    temporary = f"{directory}/.tmp-{uuid.uuid4().hex}"
    with filesystem.open_output_stream(temporary) as sink:
        pq.write_table(table, sink)
    filesystem.move(temporary, final)
    return final


class AppendOnlyFileOfflineStore(DaskOfflineStore):
    """Feast's Dask (file) offline store, but a push appends a part file instead of rewriting."""

    @staticmethod
    def offline_write_batch(
        config: RepoConfig,
        feature_view: FeatureView,
        table: pa.Table,
        progress: Callable[[int], Any] | None,
    ) -> None:
        source = feature_view.batch_source
        if not isinstance(source, FileSource):
            raise TypeError(f"feature view {feature_view.name!r}: the offline store writes FileSource views only")
        filesystem, directory = _source_dir(config, source)
        schema_path = f"{directory}/{SCHEMA_PART}"
        if filesystem.get_file_info(schema_path).type == pa.fs.FileType.NotFound:
            # Registered by `feast apply` alone (berg.features.store.prepare_store seeds it): the
            # first push fixes the schema every later part is cast to.
            write_part(filesystem, directory, table.schema.empty_table(), name=SCHEMA_PART)
        schema = pq.read_schema(schema_path, filesystem=filesystem)
        missing = [name for name in schema.names if name not in table.column_names]
        if missing:
            raise ValueError(f"feature view {feature_view.name!r}: the pushed rows lack the columns {missing}")
        write_part(filesystem, directory, table.select(schema.names).cast(schema))
        if progress is not None:
            progress(table.num_rows)
