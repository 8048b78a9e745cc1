"""Serving sees what training saw: the online feature vector equals the training set's for the same transaction.

The training set is the pipeline's: Feast's historical retrieval through the feature
service (``build_training_frame``, strictly before each transaction). Serving reads
Feast's online store and computes the on-demand features itself; for transactions
just after the simulated history both must give the same numbers, NaN for NaN.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from berg.features.dataset import build_training_frame
from berg.features.store import close_store, open_store
from berg_fraud.contracts import TransactionV1
from berg_serving.online import FeastOnlineFeatures
from tests.fraud_schema import EVENT_TIMESTAMP, FEATURE_SERVICE, REQUEST_EVENT_UNIX
from tests.fraud_serving import ASSEMBLER, SERVABLE_FEATURES
from tests.integration.serving.conftest import ServingWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_online_vectors_equal_the_training_frame(serving_world: ServingWorld) -> None:
    rows = serving_world.transactions(60, seed=11, unknown=5)
    transactions = [TransactionV1.model_validate(row) for row in rows]
    feature_store = serving_world.world.store_config
    online = FeastOnlineFeatures(open_store(feature_store), ASSEMBLER.online_reads, threads=0)
    try:
        served = ASSEMBLER.assemble(transactions, online.fetch(ASSEMBLER.entity_rows(transactions)))
    finally:
        asyncio.run(online.close())
    store = open_store(feature_store)
    try:
        entities = pd.DataFrame(
            {
                "user_id": [t.user_id for t in transactions],
                "merchant_id": [t.merchant_id for t in transactions],
                EVENT_TIMESTAMP: [t.event_time for t in transactions],
                "amount": [t.amount for t in transactions],
                REQUEST_EVENT_UNIX: [t.event_time.timestamp() for t in transactions],
            }
        )
        trained = build_training_frame(store, entities, FEATURE_SERVICE)
    finally:
        close_store(store)
    assert served.default_features_used.tolist() == [False] * 60 + [True] * 5
    for name in SERVABLE_FEATURES:
        expected = trained[name].astype("float64").to_numpy(na_value=np.nan)
        np.testing.assert_allclose(served.columns[name], expected, rtol=1e-9, equal_nan=True, err_msg=name)
