"""What ``berg demo`` shows of the feature store: that the stream reached Feast, online and offline."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from rich.table import Table

from berg.features.feature_set import FeatureSet, SnapshotView
from berg.features.label_store import LabelStore
from berg.features.store import close_store, open_store
from berg.features.store_config import FeatureStoreConfig
from berg.usecase import UseCase

__all__ = ["feature_store_tables", "online_values", "wait_for_label_store", "wait_for_snapshots"]

_SHOWN_PER_VIEW = 5


def wait_for_label_store(
    state_dir: Path,
    use_case: UseCase,
    event_ids: Collection[str],
    timeout_s: float,
    on_progress: Callable[[int], None],
) -> bool:
    """Poll the label store until it holds every one of the scored ``event_ids``."""
    store = LabelStore(
        str(state_dir.absolute() / "feast" / "offline" / "label_store"), use_case.scored, use_case.labels
    )
    wanted = set(event_ids)
    deadline = time.monotonic() + timeout_s
    while True:
        held = wanted & set(store.read(store.scored, columns=())["event_id"])
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


def wait_for_snapshots(feature_store: FeatureStoreConfig, view: SnapshotView, ids: list[str], timeout_s: float) -> bool:
    """Poll until the features service has materialized a snapshot of ``view`` for every one of ``ids``."""
    deadline = time.monotonic() + timeout_s
    first = view.model_features[0]
    while True:
        values = online_values(feature_store, view.name, view.entity.key, (first,), ids)
        if all(value is not None for value in values[first]):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(2.0)


def feature_store_tables(
    feature_store: FeatureStoreConfig, features: FeatureSet, ids_by_key: Mapping[str, list[str]]
) -> list[Table]:
    """Online values of a few entities of each stored view (``ids_by_key``: entity key -> ids), read through Feast."""
    tables = []
    for view in features.views:
        key, names = view.entity.key, view.model_features[:_SHOWN_PER_VIEW]
        ids = list(ids_by_key.get(key, ()))
        values = online_values(feature_store, view.name, key, names, ids)
        table = Table(title=f"Feast online store: {view.entity.name} ({view.name})", title_justify="left")
        table.add_column(key)
        for name in names:
            table.add_column(name, justify="right")
        for index, entity in enumerate(ids):
            table.add_row(entity, *(_show(values[name][index]) for name in names))
        tables.append(table)
    return tables


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
