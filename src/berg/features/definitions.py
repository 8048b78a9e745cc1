"""The Feast objects of Berg's feature repo, built from :mod:`berg.features.schema`.

``feature_repo/berg_features.py`` (what ``feast apply`` reads) and the tests build
them here, so the repo and the code that pushes to it cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import Float64, Int64, String
from feast.value_type import ValueType

from berg.features.schema import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    FEATURE_SERVICE,
    MERCHANT_AS_OF,
    MERCHANT_AVAILABLE,
    MERCHANT_FEATURES,
    MERCHANT_KEY,
    MERCHANT_TTL,
    MERCHANT_VIEW,
    ON_DEMAND_FEATURES,
    ON_DEMAND_VIEW,
    REQUEST_AMOUNT,
    REQUEST_EVENT_UNIX,
    USER_AS_OF,
    USER_FEATURES,
    USER_KEY,
    USER_PUSH_SOURCE,
    USER_TTL,
    USER_VIEW,
    FeatureSpec,
)

__all__ = [
    "FeatureDefinitions",
    "build_definitions",
    "source_schema",
]

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


def _fields(features: tuple[FeatureSpec, ...], *, described: bool = True) -> list[Field]:
    return [
        Field(name=spec.name, dtype=_FEAST_TYPES[spec.kind], description=spec.description if described else "")
        for spec in features
    ]


@dataclass(frozen=True)
class FeatureDefinitions:
    """Every Feast object of the repo."""

    user: Entity
    merchant: Entity
    user_source: FileSource
    user_push: PushSource
    merchant_source: FileSource
    user_view: FeatureView
    merchant_view: FeatureView
    request: RequestSource
    context_view: OnDemandFeatureView
    service: FeatureService

    def objects(self) -> list[Any]:
        """All of them, for ``FeatureStore.apply``."""
        return [getattr(self, name) for name in self.__dataclass_fields__]


def build_definitions(offline_root: str) -> FeatureDefinitions:
    """Berg's entities, sources, views and the ``fraud_model_v1`` service over ``offline_root``."""
    user = Entity(
        name="user",
        join_keys=[USER_KEY],
        value_type=ValueType.STRING,
        description="A card holder (the simulator's user_id).",
    )
    merchant = Entity(name="merchant", join_keys=[MERCHANT_KEY], value_type=ValueType.STRING, description="A merchant.")
    user_source = FileSource(
        name="user_transaction_aggregates_source",
        path=f"{offline_root}/{USER_VIEW}",
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description="Rows pushed by the features service, one per transaction (and corrections).",
    )
    user_push = PushSource(name=USER_PUSH_SOURCE, batch_source=user_source)
    merchant_source = FileSource(
        name="merchant_aggregates_source",
        path=f"{offline_root}/{MERCHANT_VIEW}",
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
        description="Hourly merchant snapshots computed by the features service from the label store.",
    )
    user_view = FeatureView(
        name=USER_VIEW,
        entities=[user],
        ttl=USER_TTL,
        schema=[Field(name=USER_KEY, dtype=String), *_fields(USER_FEATURES)],
        source=user_push,
        online=True,
        description="Streaming per-user aggregates in event-time windows (services/features).",
        tags={"kind": "streaming", "as_of": USER_AS_OF},
    )
    merchant_view = FeatureView(
        name=MERCHANT_VIEW,
        entities=[merchant],
        ttl=MERCHANT_TTL,
        schema=[Field(name=MERCHANT_KEY, dtype=String), *_fields(MERCHANT_FEATURES)],
        source=merchant_source,
        online=True,
        description="Per-merchant volume and fraud rate from labels known at the snapshot (batch, materialized).",
        tags={"kind": "batch", "as_of": MERCHANT_AS_OF},
    )
    request = RequestSource(
        name="transaction_request",
        schema=[Field(name=REQUEST_AMOUNT, dtype=Float64), Field(name=REQUEST_EVENT_UNIX, dtype=Float64)],
        description="The transaction being scored: its amount and event time (Unix seconds).",
    )

    @on_demand_feature_view(  # type: ignore[untyped-decorator]
        sources=[request, user_view[["amount_mean_7d", USER_AS_OF]]],
        # Feast checks the declared schema against one it infers by running the function,
        # field for field, descriptions included: on-demand fields go undescribed.
        schema=_fields(ON_DEMAND_FEATURES, described=False),
        mode="pandas",
    )
    def transaction_context(inputs: pd.DataFrame) -> pd.DataFrame:
        # Feast rebuilds this function from its source text, without this module's
        # globals: the import must be inside.
        from berg.features.on_demand import transaction_context as compute

        return compute(inputs)

    assert transaction_context.name == ON_DEMAND_VIEW
    model_user_features = [spec.name for spec in USER_FEATURES if spec.name != USER_AS_OF]
    model_merchant_features = [
        spec.name for spec in MERCHANT_FEATURES if spec.name not in {MERCHANT_AS_OF, MERCHANT_AVAILABLE}
    ]
    service = FeatureService(
        name=FEATURE_SERVICE,
        features=[
            user_view[model_user_features],
            merchant_view[model_merchant_features],
            transaction_context,
        ],
        description="The features of the fraud model, version 1. A new feature set is a new service (v2).",
        tags={"model": "fraud"},
    )
    return FeatureDefinitions(
        user=user,
        merchant=merchant,
        user_source=user_source,
        user_push=user_push,
        merchant_source=merchant_source,
        user_view=user_view,
        merchant_view=merchant_view,
        request=request,
        context_view=transaction_context,
        service=service,
    )
