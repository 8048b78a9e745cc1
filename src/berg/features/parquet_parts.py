"""The part files of Berg's offline sources: where a source's parts live, and how one part is written.

A source is a folder of parquet parts (see :mod:`berg.features.offline_store`). Both the
offline store, which appends parts, and the point-in-time join
(:mod:`berg.features.point_in_time`), which reads them, resolve a source's folder here,
so neither has to import the other for it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from feast import FileSource

__all__ = ["SCHEMA_PART", "source_directory", "write_part"]

SCHEMA_PART = "part-00000000-schema.parquet"
"""An empty part holding the schema, so a source can be read before its first push."""


def source_directory(source: FileSource, repo_path: Path | str | None) -> tuple[Any, str]:
    """A file source's pyarrow filesystem and path (its folder of parts, or its file), as Feast resolves them.

    A relative URI is resolved against ``repo_path``; ``s3://`` gets an S3 filesystem
    (with the source's endpoint override and ``connection_ref`` credentials), anything
    else the local one.
    """
    uri = FileSource.get_uri_for_file_path(repo_path=repo_path, uri=source.file_options.uri)
    filesystem, path = FileSource.create_filesystem_and_path(
        str(uri), source.file_options.s3_endpoint_override, source.resolve_credentials()
    )
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
