"""What ``berg demo`` shows of the feature store: that the stream reached Feast, online and offline."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from pathlib import Path

from rich.table import Table

from berg.features.label_store import LabelStore
from berg.features.schema import (
    MERCHANT_KEY,
    MERCHANT_VIEW,
    USER_KEY,
    USER_VIEW,
)
from berg.features.store import close_store, open_store
from berg.features.store_config import FeatureStoreConfig

__all__ = ["feature_store_tables", "online_values", "wait_for_label_store", "wait_for_merchants"]

_USER_COLUMNS = ("tx_count_24h", "tx_count_7d", "amount_mean_7d", "distinct_merchants_24h", "card_not_present_share_7d")
_MERCHANT_COLUMNS = ("merchant_tx_count_24h", "merchant_fraud_rate_30d", "merchant_labels_known_30d")


def wait_for_label_store(
    state_dir: Path, transaction_ids: Collection[str], timeout_s: float, on_progress: Callable[[int], None]
) -> bool:
    """Poll the label store until it holds every one of ``transaction_ids``."""
    store = LabelStore(str(state_dir.absolute() / "feast" / "offline" / "label_store"))
    wanted = set(transaction_ids)
    deadline = time.monotonic() + timeout_s
    while True:
        held = wanted & set(store.read("transactions")["event_id"])
        on_progress(len(held))
        if held == wanted:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)


def online_values(
    feature_store: FeatureStoreConfig, view: str, key: str, names: tuple[str, ...], ids: list[str]
) -> dict[str, list[object]]:
    """Online values of ``names`` of ``view`` for ``ids``, read back through Feast."""
    store = open_store(feature_store)
    try:
        return dict(
            store.get_online_features(
                features=[f"{view}:{name}" for name in names], entity_rows=[{key: i} for i in ids]
            ).to_dict()
        )
    finally:
        close_store(store)


def wait_for_merchants(feature_store: FeatureStoreConfig, merchant_ids: list[str], timeout_s: float) -> bool:
    """Poll until the merchant job has materialized a snapshot of every one of ``merchant_ids``."""
    deadline = time.monotonic() + timeout_s
    while True:
        values = online_values(feature_store, MERCHANT_VIEW, MERCHANT_KEY, _MERCHANT_COLUMNS[:1], merchant_ids)
        if all(value is not None for value in values[_MERCHANT_COLUMNS[0]]):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(2.0)


def feature_store_tables(
    feature_store: FeatureStoreConfig, user_ids: list[str], merchant_ids: list[str]
) -> list[Table]:
    """Online values of a few users and merchants, read back through Feast."""
    tables = []
    for title, view, key, names, ids in (
        ("users", USER_VIEW, USER_KEY, _USER_COLUMNS, user_ids),
        ("merchants", MERCHANT_VIEW, MERCHANT_KEY, _MERCHANT_COLUMNS, merchant_ids),
    ):
        values = online_values(feature_store, view, key, names, ids)
        table = Table(title=f"Feast online store: {title} ({view})", title_justify="left")
        table.add_column(key)
        for name in names:
            table.add_column(_SHORT.get(name, name), justify="right")
        for index, entity in enumerate(ids):
            table.add_row(entity, *(_show(values[name][index]) for name in names))
        tables.append(table)
    return tables


_SHORT = {
    "tx_count_24h": "tx 24h",
    "tx_count_7d": "tx 7d",
    "amount_mean_7d": "mean 7d",
    "distinct_merchants_24h": "merchants 24h",
    "card_not_present_share_7d": "CNP 7d",
    "merchant_tx_count_24h": "tx 24h",
    "merchant_fraud_rate_30d": "fraud rate 30d",
    "merchant_labels_known_30d": "labels 30d",
}


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
