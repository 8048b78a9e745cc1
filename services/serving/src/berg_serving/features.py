"""The feature vector of a transaction at scoring time, as training saw it.

The model reads the ``fraud_model_v1`` feature service plus the request's
``amount`` (``berg_pipelines``' dataset): the user's streaming aggregates and the
merchant's snapshot from Feast's online store, and the on-demand
``transaction_context`` computed by the same function training used
(:func:`berg.features.on_demand.transaction_context`).

Missing is NaN, as in training (``feature_matrix``: float32, NaN for missing), and
a stored row counts only within its view's TTL of the transaction, as in the
point-in-time join that built the training set: an unknown user or merchant, or
one whose row is older than the TTL, gets NaN for that view's features (XGBoost
learned where missing values go) and ``default_features_used``. A merchant
snapshot's TTL runs from when it became available (``merchant_available_unix``,
its Feast event timestamp), as in the training join. Pure: the online values come
in as Feast's ``OnlineResponse.to_dict()`` shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from berg.contracts import TransactionV1
from berg.features.on_demand import transaction_context
from berg.features.schema import (
    MERCHANT_AS_OF,
    MERCHANT_AVAILABLE,
    MERCHANT_FEATURES,
    MERCHANT_KEY,
    MERCHANT_TTL,
    MERCHANT_VIEW,
    ON_DEMAND_FEATURES,
    REQUEST_AMOUNT,
    REQUEST_EVENT_UNIX,
    USER_AS_OF,
    USER_FEATURES,
    USER_KEY,
    USER_TTL,
    USER_VIEW,
)

__all__ = [
    "ONLINE_FEATURE_REFS",
    "SERVABLE_FEATURES",
    "FeatureFrame",
    "MissingFeaturesError",
    "assemble_features",
    "entity_rows",
    "feature_matrix",
]

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_USER_STORED = tuple(spec.name for spec in USER_FEATURES)
_MERCHANT_STORED = tuple(spec.name for spec in MERCHANT_FEATURES)

ONLINE_FEATURE_REFS: tuple[str, ...] = (
    *(f"{USER_VIEW}:{name}" for name in _USER_STORED),
    *(f"{MERCHANT_VIEW}:{name}" for name in _MERCHANT_STORED),
)
"""What one online lookup reads: every stored feature of both views, the as-of and availability columns included."""

SERVABLE_FEATURES: tuple[str, ...] = (
    *(name for name in _USER_STORED if name != USER_AS_OF),
    *(name for name in _MERCHANT_STORED if name not in {MERCHANT_AS_OF, MERCHANT_AVAILABLE}),
    *(spec.name for spec in ON_DEMAND_FEATURES),
    REQUEST_AMOUNT,
)
"""Every feature the transformer can hand to a model: ``fraud_model_v1`` and the request's amount."""


class MissingFeaturesError(ValueError):
    """A model needs features the request did not bring."""


@dataclass(frozen=True)
class FeatureFrame:
    """Named feature columns for a batch of transactions (float64, NaN for missing)."""

    columns: Mapping[str, np.ndarray]
    user_known: np.ndarray
    """Per row: the user had a row in the online store within the TTL."""
    merchant_known: np.ndarray

    def __len__(self) -> int:
        return len(self.user_known)

    @property
    def default_features_used(self) -> np.ndarray:
        """Per row: some view's features were defaults (NaN) because the entity was unknown or stale."""
        result: np.ndarray = ~(self.user_known & self.merchant_known)
        return result

    def matrix(self, order: Sequence[str]) -> np.ndarray:
        """The model's input in its column order (see :func:`feature_matrix`)."""
        return feature_matrix(self.columns, order)

    def row(self, index: int) -> dict[str, float]:
        """One transaction's features without the missing ones (the prediction log has no NaN)."""
        values = {name: float(column[index]) for name, column in self.columns.items()}
        return {name: value for name, value in values.items() if math.isfinite(value)}


def feature_matrix(columns: Mapping[str, np.ndarray], order: Sequence[str]) -> np.ndarray:
    """A model's input from named columns, in its column order: float32, NaN for missing, clipped to float32.

    Raises:
        MissingFeaturesError: a feature of ``order`` is not among the columns.
    """
    missing = [name for name in order if name not in columns]
    if missing:
        raise MissingFeaturesError(f"features {missing} are missing; given: {sorted(columns)}")
    rows = len(next(iter(columns.values()))) if columns else 0
    matrix = np.empty((rows, len(order)), dtype=np.float32)
    for index, name in enumerate(order):
        # Beyond float32's range a value would become infinite, which XGBoost refuses: it is clipped
        # to the largest float32 (still past every split point). NaN passes through.
        matrix[:, index] = np.clip(columns[name], -_FLOAT32_MAX, _FLOAT32_MAX)
    return matrix


def entity_rows(transactions: Sequence[TransactionV1]) -> list[dict[str, str]]:
    """Feast's ``entity_rows`` for a batch: the user and the merchant of each transaction."""
    return [{USER_KEY: t.user_id, MERCHANT_KEY: t.merchant_id} for t in transactions]


def _floats(values: Sequence[object] | None, count: int) -> np.ndarray:
    if values is None:
        return np.full(count, np.nan)
    return np.array([np.nan if value is None else value for value in values], dtype=np.float64)


def _usable(stamp: np.ndarray, event_unix: np.ndarray, ttl_s: float) -> np.ndarray:
    # A row counts when it exists and its stamp (the row's Feast event time) is no older than the
    # view's TTL at the transaction's time, as in the point-in-time join of the training set (NaN
    # compares False: no row, not usable).
    usable: np.ndarray = ~np.isnan(stamp) & (event_unix - stamp <= ttl_s)
    return usable


def assemble_features(transactions: Sequence[TransactionV1], online: Mapping[str, Sequence[object]]) -> FeatureFrame:
    """The feature columns of ``transactions`` from their online rows (Feast's ``to_dict()``, same order).

    A user row's TTL runs from its as-of time (its stamp); a merchant snapshot's from when it became
    available (``merchant_available_unix``, its stamp), as in training.

    Raises:
        ValueError: ``online`` does not hold one value per transaction for each feature.
    """
    count = len(transactions)
    for name, values in online.items():
        if len(values) != count:
            raise ValueError(f"online feature {name!r} has {len(values)} values for {count} transactions")
    event_unix = np.array([t.event_time.timestamp() for t in transactions], dtype=np.float64)
    amount = np.array([t.amount for t in transactions], dtype=np.float64)
    user_known = _usable(_floats(online.get(USER_AS_OF), count), event_unix, USER_TTL.total_seconds())
    merchant_known = _usable(_floats(online.get(MERCHANT_AVAILABLE), count), event_unix, MERCHANT_TTL.total_seconds())
    columns: dict[str, np.ndarray] = {}
    for names, known in ((_USER_STORED, user_known), (_MERCHANT_STORED, merchant_known)):
        for name in names:
            columns[name] = np.where(known, _floats(online.get(name), count), np.nan)
    context = transaction_context(
        pd.DataFrame(
            {
                REQUEST_AMOUNT: amount,
                REQUEST_EVENT_UNIX: event_unix,
                "amount_mean_7d": columns["amount_mean_7d"],
                USER_AS_OF: columns[USER_AS_OF],
            }
        )
    )
    for spec in ON_DEMAND_FEATURES:
        columns[spec.name] = context[spec.name].to_numpy(dtype=np.float64, na_value=np.nan)
    columns[REQUEST_AMOUNT] = amount
    return FeatureFrame(
        columns={name: columns[name] for name in SERVABLE_FEATURES},
        user_known=user_known,
        merchant_known=merchant_known,
    )
