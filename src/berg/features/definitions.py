"""The Feast objects of a use case's feature set (:mod:`berg.features.feature_set`).

``feature_repo/berg_repo.py`` (what ``feast apply`` reads), :func:`berg.features.store.prepare_store`
and the tests build them here, so the repo and the code that pushes to it cannot drift apart.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource
from feast.data_source import DataSource
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import Float64, Int64, String
from feast.value_type import ValueType

from berg.features.feature_set import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    FeatureSet,
    FeatureSpec,
    OnDemandView,
    StoredView,
    StreamingView,
)

__all__ = [
    "AS_OF_TAG",
    "FeatureDefinitions",
    "build_definitions",
    "source_schema",
    "view_source_schema",
]

AS_OF_TAG = "as_of"
"""A feature view names its as-of feature in this tag: the Unix-seconds event time of the data a row summarises."""

_FEAST_TYPES = {"int": Int64, "float": Float64}
_ARROW_TYPES = {"int": pa.int64(), "float": pa.float64()}


def source_schema(key: str, features: tuple[FeatureSpec, ...]) -> pa.Schema:
    """The parquet schema of an offline source: key, features, event and created timestamps."""
    return pa.schema(
        [
            pa.field(key, pa.string()),
            *(pa.field(spec.name, _ARROW_TYPES[spec.kind]) for spec in features),
            pa.field(EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC")),
            pa.field(CREATED_TIMESTAMP, pa.timestamp("us", tz="UTC")),
        ]
    )


def view_source_schema(view: StoredView) -> pa.Schema:
    """The parquet schema of ``view``'s offline source."""
    return source_schema(view.entity.key, view.features)


def _fields(features: tuple[FeatureSpec, ...], *, described: bool = True) -> list[Field]:
    return [
        Field(name=spec.name, dtype=_FEAST_TYPES[spec.kind], description=spec.description if described else "")
        for spec in features
    ]


@dataclass(frozen=True)
class FeatureDefinitions:
    """Every Feast object of a feature set."""

    entities: tuple[Entity, ...]
    sources: Mapping[str, FileSource]
    """Stored view name -> its offline source."""
    push_sources: tuple[PushSource, ...]
    views: Mapping[str, FeatureView]
    """Stored view name -> its feature view."""
    request: RequestSource | None
    on_demand: OnDemandFeatureView | None
    service: FeatureService

    def objects(self) -> list[Any]:
        """All of them, for ``FeatureStore.apply`` and a repo file."""
        optional: list[Any] = [obj for obj in (self.request, self.on_demand) if obj is not None]
        return [
            *self.entities,
            *self.sources.values(),
            *self.push_sources,
            *self.views.values(),
            *optional,
            self.service,
        ]


def _source(view: StoredView, offline_root: str) -> FileSource:
    return FileSource(
        name=view.source_name,
        path=f"{offline_root}/{view.name}",
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description=view.source_description,
    )


def _view(view: StoredView, entity: Entity, source: DataSource) -> FeatureView:
    return FeatureView(
        name=view.name,
        entities=[entity],
        ttl=view.ttl,
        schema=[Field(name=view.entity.key, dtype=String), *_fields(view.features)],
        source=source,
        online=True,
        description=view.description,
        tags={"kind": view.kind, AS_OF_TAG: view.as_of},
    )


def _on_demand(spec: OnDemandView, views: Mapping[str, FeatureView]) -> tuple[RequestSource, OnDemandFeatureView]:
    request = RequestSource(
        name=spec.request_source,
        schema=[Field(name=column, dtype=Float64) for column in spec.request_columns],
        description=spec.request_description,
    )
    decorate = on_demand_feature_view(
        sources=[request, *(views[source.view][list(source.features)] for source in spec.inputs)],
        # Feast checks the declared schema against one it infers by running the function,
        # field for field, descriptions included: on-demand fields go undescribed.
        schema=_fields(spec.features, described=False),
        mode=spec.mode,
    )
    view: OnDemandFeatureView = decorate(_copy(spec.function))
    return request, view


def _copy(function: Callable[..., Any]) -> Callable[..., Any]:
    # Feast's decorator rewrites the function's __module__ to "__main__" (for dill), after which its
    # source can no longer be found: it gets a copy, so the use case's function stays as it is and a
    # second build (another store, a test) finds its source again.
    copy = types.FunctionType(
        function.__code__, function.__globals__, function.__name__, function.__defaults__, function.__closure__
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__annotations__ = dict(function.__annotations__)
    copy.__qualname__ = function.__qualname__
    copy.__doc__ = function.__doc__
    return copy


def build_definitions(features: FeatureSet, offline_root: str) -> FeatureDefinitions:
    """The entities, sources, views and feature service of ``features``, with offline sources under ``offline_root``."""
    entities = {
        entity.name: Entity(
            name=entity.name, join_keys=[entity.key], value_type=ValueType.STRING, description=entity.description
        )
        for entity in features.entities
    }
    sources = {view.name: _source(view, offline_root) for view in features.views}
    pushes = {
        view.name: PushSource(name=view.push_source, batch_source=sources[view.name]) for view in features.streaming
    }
    views: dict[str, FeatureView] = {}
    for view in features.views:
        source: DataSource = pushes[view.name] if isinstance(view, StreamingView) else sources[view.name]
        views[view.name] = _view(view, entities[view.entity.name], source)
    request, on_demand = _on_demand(features.on_demand, views) if features.on_demand else (None, None)
    service = FeatureService(
        name=features.service,
        features=[
            *(views[view.name][list(view.model_features)] for view in features.views),
            *([on_demand] if on_demand is not None else []),
        ],
        description=features.description,
    )
    return FeatureDefinitions(
        entities=tuple(entities.values()),
        sources=types.MappingProxyType(sources),
        push_sources=tuple(pushes.values()),
        views=types.MappingProxyType(views),
        request=request,
        on_demand=on_demand,
        service=service,
    )
