"""The fraud case's feature names under short names, for tests and benchmarks that write or read its rows.

Every name is derived from the fraud case's declared feature set (``berg_fraud.features``): nothing here
says what a feature is, only where to find it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from berg.features.feature_set import CREATED_TIMESTAMP, EVENT_TIMESTAMP, REQUEST_EVENT_UNIX, SnapshotView
from berg.features.label_store import LabelStore
from berg_fraud.features import MERCHANT_SNAPSHOTS, USER_AGGREGATES, fraud_features
from berg_fraud.use_case import fraud

if TYPE_CHECKING:
    from berg_features.handler import Source

__all__ = [
    "CREATED_TIMESTAMP",
    "DEFAULT_ALLOWED_LATENESS",
    "EVENT_TIMESTAMP",
    "FEATURES",
    "FEATURE_SERVICE",
    "MERCHANT_AS_OF",
    "MERCHANT_AVAILABLE",
    "MERCHANT_FEATURES",
    "MERCHANT_FRAUD_WINDOW",
    "MERCHANT_KEY",
    "MERCHANT_SNAPSHOTS",
    "MERCHANT_SNAPSHOT_EVERY",
    "MERCHANT_TTL",
    "MERCHANT_VIEW",
    "ON_DEMAND_FEATURES",
    "ON_DEMAND_VIEW",
    "REQUEST_AMOUNT",
    "REQUEST_EVENT_UNIX",
    "USER_AGGREGATES",
    "USER_AS_OF",
    "USER_FEATURES",
    "USER_KEY",
    "USER_PUSH_SOURCE",
    "USER_STREAMING_VIEW",
    "USER_TTL",
    "USER_VIEW",
    "fraud_label_store",
    "fraud_sources",
]

FEATURES = fraud_features()
FEATURE_SERVICE = FEATURES.service
_USER = FEATURES.streaming[0]
USER_STREAMING_VIEW = _USER
"""The fraud case's one streaming view, as the features handler takes it."""
USER_VIEW, USER_KEY, USER_AS_OF, USER_TTL = _USER.name, _USER.entity.key, _USER.as_of, _USER.ttl
USER_FEATURES = _USER.features
USER_PUSH_SOURCE = _USER.push_source
_MERCHANT: SnapshotView = MERCHANT_SNAPSHOTS
MERCHANT_VIEW, MERCHANT_KEY, MERCHANT_TTL = _MERCHANT.name, _MERCHANT.entity.key, _MERCHANT.ttl
MERCHANT_AS_OF, MERCHANT_AVAILABLE = _MERCHANT.as_of, _MERCHANT.available
MERCHANT_FEATURES = _MERCHANT.features
MERCHANT_SNAPSHOT_EVERY, MERCHANT_FRAUD_WINDOW = _MERCHANT.every, _MERCHANT.window
assert FEATURES.on_demand is not None
ON_DEMAND_VIEW, ON_DEMAND_FEATURES = FEATURES.on_demand.name, FEATURES.on_demand.features
REQUEST_AMOUNT = "amount"
DEFAULT_ALLOWED_LATENESS = timedelta(hours=1)
"""The features service's default lateness (``BERG_FEATURES_ALLOWED_LATENESS_S``)."""


def fraud_label_store(root: str) -> LabelStore:
    """The label store of the fraud case's two streams under ``root``."""
    use_case = fraud()
    return LabelStore(root, use_case.scored, use_case.labels)


def fraud_sources() -> dict[str, Source]:
    """The features handler's two sources for the fraud case (its valid topics and contracts)."""
    from berg_features.handler import Source

    use_case = fraud()
    return {
        "scored": Source(use_case.scored.valid_topic, use_case.scored.contract),
        "labels": Source(use_case.labels.valid_topic, use_case.labels.contract),
    }
