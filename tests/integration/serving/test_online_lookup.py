"""Serving's online lookup reads exactly what Feast's own ``get_online_features`` reads (embedded profile).

The lookup plans once (the registry's views) and calls the online store's ``online_read``
directly; these tests hold it to Feast's public API on the serving world's SQLite store, for
users and merchants it knows, ones it never saw, and both places the read can run.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from berg.features.store import open_store
from berg_serving.online import FeastOnlineFeatures, OnlinePlanError
from tests.fraud_serving import ASSEMBLER
from tests.integration.serving.conftest import ServingWorld

pytestmark = pytest.mark.integration


def _entity_rows(serving_world: ServingWorld) -> list[dict[str, str]]:
    rows = serving_world.transactions(12, seed=5, unknown=2)
    return [{key: str(row[key]) for key in ASSEMBLER.entity_keys} for row in rows] + [
        {"user_id": "nobody", "merchant_id": "nowhere"}
    ]


def _feast_reads(serving_world: ServingWorld, entity_rows: list[dict[str, str]]) -> dict[str, list[Any]]:
    store = open_store(serving_world.world.store_config)
    response = store.get_online_features(features=list(ASSEMBLER.online_refs), entity_rows=entity_rows)
    values: dict[str, list[Any]] = response.to_dict()
    return {name: values[name] for read in ASSEMBLER.online_reads for name in read.features}


@pytest.mark.parametrize("threads", [0, 2], ids=["on-the-loop", "on-threads"])
def test_the_lookup_equals_feasts_get_online_features(serving_world: ServingWorld, threads: int) -> None:
    entity_rows = _entity_rows(serving_world)
    expected = _feast_reads(serving_world, entity_rows)
    known = [value is not None for value in expected[ASSEMBLER.online_reads[0].features[0]]]
    assert any(known)  # the sample holds known users
    assert not all(known)  # and unknown ones
    online = FeastOnlineFeatures(open_store(serving_world.world.store_config), ASSEMBLER.online_reads, threads)
    try:
        online.warm_up(ASSEMBLER.warm_up_rows())
        assert asyncio.run(online.lookup(entity_rows)) == expected
        assert online.fetch(entity_rows[:1]) == {name: values[:1] for name, values in expected.items()}
    finally:
        asyncio.run(online.close())


def test_a_view_or_feature_the_registry_lacks_is_refused_at_start(serving_world: ServingWorld) -> None:
    first = ASSEMBLER.online_reads[0]
    store = open_store(serving_world.world.store_config)
    with pytest.raises(OnlinePlanError, match="no view 'no_such_view'"):
        FeastOnlineFeatures(store, [dataclasses.replace(first, view="no_such_view")], 0)
    with pytest.raises(OnlinePlanError, match=r"has no features \['no_such_feature'\]"):
        FeastOnlineFeatures(store, [dataclasses.replace(first, features=(*first.features, "no_such_feature"))], 0)
