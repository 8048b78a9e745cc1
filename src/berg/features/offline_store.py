"""An append-only parquet offline store for Feast.

Feast's file offline store pushes by reading the whole parquet file, appending
the batch and writing it back: every push costs the size of the history, and two
writers lose each other's rows. Berg's feature sources are directories instead;
a push writes one new part file (written under a temporary name, then renamed), so
a push costs the size of the batch and concurrent writers never collide.

Historical retrieval (``get_historical_features`` with an entity frame) is Berg's
own point-in-time join (:mod:`berg.features.point_in_time`), because Feast 0.67's
Dask retrieval gets it wrong in ways a training set cannot live with:

- it drops an entity row whose candidate rows are all outside the TTL or all later
  than the row's time, instead of returning nulls, and returns rows in its own order;
- it keeps one entity row per join keys and time, keyed on the *first* view's join
  keys: two events of one entity at the same instant, joined to two entities of another
  view, come back as one;
- it breaks event-time ties by sorting on created time and then, unstably, on event
  time: a correction wins or loses at random (most ties resolved wrongly in tests);
- with more than one parquet part (this store writes one per push) it raises
  ``NotImplementedError`` from Dask when any entity key has no rows at all, and its
  cost grows with the number of parts (20 s for 4,000 rows in 400 parts).

Here every entity row comes back, in the caller's order with the caller's columns,
followed by each view's values (null where there is none); Feast's
``RetrievalJob.to_df``/``to_arrow`` then computes the on-demand features as usual.
Materialization reads its rows here too (``pull_all_from_table_or_query``: the
source's rows in a time range, read with pyarrow's dataset reader, which skips the
parts whose statistics rule them out), then Feast keeps each entity's newest and
writes it online; through Dask the read took about 2 s for a few thousand rows, and
a batch view's job materializes after every run. Retrieval without an entity frame
(``start_date``/``end_date``) is Feast's own Dask code.
Works on local paths and on object storage (``s3://``) through pyarrow's filesystems.

Use it from ``feature_store.yaml``::

    offline_store:
      type: berg.features.offline_store.AppendOnlyFileOfflineStore
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from feast import FeatureView, FileSource
from feast.errors import SavedDatasetLocationAlreadyExists
from feast.infra.offline_stores.dask import DaskOfflineStore, DaskOfflineStoreConfig
from feast.infra.offline_stores.file_source import SavedDatasetFileStorage
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from feast.saved_dataset import SavedDatasetStorage
from feast.utils import _get_requested_feature_views_to_features_dict

from berg.features.parquet_parts import SCHEMA_PART, source_directory, write_part
from berg.features.point_in_time import join_feature_view

__all__ = [
    "AppendOnlyFileOfflineStore",
    "AppendOnlyFileOfflineStoreConfig",
    "PointInTimeRetrievalJob",
    "SourceRowsRetrievalJob",
]


class AppendOnlyFileOfflineStoreConfig(DaskOfflineStoreConfig):
    """Config for :class:`AppendOnlyFileOfflineStore` (no options of its own)."""

    # Feast loads a custom offline store by this dotted path, the value of `type` in feature_store.yaml.
    type: Literal["berg.features.offline_store.AppendOnlyFileOfflineStore"] = (
        "berg.features.offline_store.AppendOnlyFileOfflineStore"  # type: ignore[assignment]
    )


class _ArrowRetrievalJob(RetrievalJob):
    """What Berg's retrieval jobs share: the result is built as an arrow table, never exported remotely."""

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        return self._to_arrow_internal(timeout).to_pandas()

    def supports_remote_storage_export(self) -> bool:
        return False


class PointInTimeRetrievalJob(_ArrowRetrievalJob):
    """A historical retrieval over an entity frame, run when its result is asked for.

    ``to_df``/``to_arrow`` (Feast's) call :meth:`_to_arrow_internal` (the entity frame
    followed by each view's point-in-time values) and then compute the on-demand views.
    """

    def __init__(
        self,
        *,
        config: RepoConfig,
        entity_df: pd.DataFrame,
        timestamp_column: str,
        views: Sequence[tuple[FeatureView, Sequence[str]]],
        full_feature_names: bool,
        filter_by_created_timestamp: bool,
        on_demand_feature_views: list[OnDemandFeatureView],
        metadata: RetrievalMetadata,
    ) -> None:
        self._config = config
        self._entity_df = entity_df
        self._timestamp_column = timestamp_column
        self._views = list(views)
        self._full_feature_names = full_feature_names
        self._filter_by_created_timestamp = filter_by_created_timestamp
        self._on_demand_feature_views = on_demand_feature_views
        self._metadata = metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._on_demand_feature_views

    @property
    def metadata(self) -> RetrievalMetadata:
        return self._metadata

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:  # noqa: ARG002 (Feast's signature)
        table = pa.Table.from_pandas(self._entity_df, preserve_index=False)
        for view, features in self._views:
            values = join_feature_view(
                view,
                features,
                self._entity_df,
                repo_path=self._config.repo_path,
                timestamp_column=self._timestamp_column,
                full_feature_names=self._full_feature_names,
                filter_by_created_timestamp=self._filter_by_created_timestamp,
            )
            for name in values.column_names:
                if name in table.column_names:
                    raise ValueError(
                        f"feature column {name!r} of view {view.name!r} is already a column of the entity frame"
                        " or of another view (full_feature_names=True names features view__feature)"
                    )
                table = table.append_column(name, values[name])
        return table

    def persist(
        self,
        storage: SavedDatasetStorage,
        allow_overwrite: bool = False,
        timeout: int | None = None,
    ) -> None:
        """Write the result (on-demand features included) as a saved dataset: a parquet file or folder."""
        if not isinstance(storage, SavedDatasetFileStorage):
            raise TypeError(f"Berg's offline store saves datasets to a SavedDatasetFileStorage, not {type(storage)}")
        uri = FileSource.get_uri_for_file_path(repo_path=self._config.repo_path, uri=storage.file_options.uri)
        filesystem, path = FileSource.create_filesystem_and_path(str(uri), storage.file_options.s3_endpoint_override)
        filesystem = filesystem or pa.fs.LocalFileSystem()
        if not allow_overwrite and filesystem.get_file_info(path).type != pa.fs.FileType.NotFound:
            raise SavedDatasetLocationAlreadyExists(location=storage.file_options.uri)
        if path.endswith(".parquet"):
            pq.write_table(self.to_arrow(timeout=timeout), path, filesystem=filesystem)
        else:
            pq.write_to_dataset(self.to_arrow(timeout=timeout), root_path=path, filesystem=filesystem)


class SourceRowsRetrievalJob(_ArrowRetrievalJob):
    """A source's rows with their event time in ``[start, end]`` (both ends included, as Feast's Dask store
    has them), ordered by event then created time; read when the result is asked for."""

    def __init__(
        self,
        *,
        filesystem: Any,
        directory: str,
        columns: Sequence[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> None:
        self._filesystem = filesystem
        self._directory = directory
        self._columns = list(dict.fromkeys(columns))
        self._timestamp_field = timestamp_field
        self._created = created_timestamp_column
        self._start = start
        self._end = end

    @property
    def full_feature_names(self) -> bool:
        return False

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return []

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:  # noqa: ARG002 (Feast's signature)
        dataset = pads.dataset(self._directory, filesystem=self._filesystem, format="parquet")
        when = pads.field(self._timestamp_field)
        condition = None
        if self._start is not None:
            condition = when >= pa.scalar(_aware(self._start))
        if self._end is not None:
            upper = when <= pa.scalar(_aware(self._end))
            condition = upper if condition is None else condition & upper
        table = dataset.to_table(columns=self._columns, filter=condition)
        order = [(self._timestamp_field, "ascending")]
        if self._created:
            order.append((self._created, "ascending"))
        return table.sort_by(order)

    def persist(
        self,
        storage: SavedDatasetStorage,
        allow_overwrite: bool = False,
        timeout: int | None = None,
    ) -> None:
        raise NotImplementedError("a materialization read is not saved as a dataset: use get_historical_features")


def _aware(moment: datetime) -> datetime:
    # Feast hands materialization naive UTC datetimes in some paths; the sources' times are UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _entity_timestamp_column(entity_df: pd.DataFrame) -> str:
    """Feast's choice: ``event_timestamp``, else the frame's only datetime column."""
    if DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL in entity_df.columns:
        return DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
    datetimes = entity_df.select_dtypes(include=["datetime", "datetimetz"]).columns
    if len(datetimes) == 1:
        return str(datetimes[0])
    raise ValueError(
        f"Please provide an entity_df with a column named {DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL} "
        "representing the time of events."
    )


def _timestamp_range(times: pd.Series) -> tuple[datetime | None, datetime | None]:
    parsed = pd.to_datetime(times, utc=True).dropna()
    if parsed.empty:
        return None, None
    return parsed.min().to_pydatetime(), parsed.max().to_pydatetime()


class AppendOnlyFileOfflineStore(DaskOfflineStore):
    """Feast's Dask (file) offline store, but a push appends a part file instead of rewriting,
    and historical retrieval over an entity frame is a correct point-in-time join."""

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        """Each entity row, in order, with its point-in-time feature values (:mod:`berg.features.point_in_time`).

        ``entity_df`` is a pandas (or Dask) frame holding every requested view's join
        keys and the time column (``event_timestamp``, or its only datetime column);
        its columns come back unchanged, followed by the features in request order,
        then (computed by Feast's ``to_df``/``to_arrow``) the on-demand ones. Without an
        entity frame (a ``start_date``/``end_date`` range), Feast's Dask retrieval runs.
        """
        assert isinstance(config.offline_store, DaskOfflineStoreConfig)
        if entity_df is None:
            return DaskOfflineStore.get_historical_features(
                config,
                feature_views,
                feature_refs,
                entity_df,
                registry,
                project,
                full_feature_names,
                filter_by_created_timestamp,
                **kwargs,
            )
        if isinstance(entity_df, str):
            raise ValueError(
                "Berg's offline store takes the entity rows as a pandas DataFrame, not a SQL query: "
                "read the query's rows into a DataFrame first"
            )
        if not isinstance(entity_df, pd.DataFrame):
            compute = getattr(entity_df, "compute", None)  # a Dask frame, which Feast's Dask store also accepts
            if compute is None:
                raise ValueError(f"entity_df must be a pandas DataFrame, not {type(entity_df)}")
            entity_df = compute()
            assert isinstance(entity_df, pd.DataFrame)
        timestamp_column = _entity_timestamp_column(entity_df)
        on_demand = OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry)
        views_to_features, _ = _get_requested_feature_views_to_features_dict(feature_refs, feature_views, on_demand)
        earliest, latest = _timestamp_range(entity_df[timestamp_column])
        return PointInTimeRetrievalJob(
            config=config,
            entity_df=entity_df,
            timestamp_column=timestamp_column,
            views=[(view, list(dict.fromkeys(features))) for view, features in views_to_features.items()],
            full_feature_names=full_feature_names,
            filter_by_created_timestamp=filter_by_created_timestamp,
            on_demand_feature_views=on_demand,
            metadata=RetrievalMetadata(
                features=feature_refs,
                keys=[str(column) for column in entity_df.columns if column != timestamp_column],
                min_event_timestamp=earliest,
                max_event_timestamp=latest,
            ),
        )

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: Any,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        """The rows materialization reads: see :class:`SourceRowsRetrievalJob` (a view without entities, or
        a source that is not a file source, goes through Feast's Dask store)."""
        if not join_key_columns or not isinstance(data_source, FileSource):
            return DaskOfflineStore.pull_all_from_table_or_query(
                config,
                data_source,
                join_key_columns,
                feature_name_columns,
                timestamp_field,
                created_timestamp_column,
                start_date,
                end_date,
            )
        filesystem, directory = source_directory(data_source, config.repo_path)
        stamps = [timestamp_field, *([created_timestamp_column] if created_timestamp_column else [])]
        return SourceRowsRetrievalJob(
            filesystem=filesystem,
            directory=directory,
            columns=[*join_key_columns, *feature_name_columns, *stamps],
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            start=start_date,
            end=end_date,
        )

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
        filesystem, directory = source_directory(source, config.repo_path)
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
