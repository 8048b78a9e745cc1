"""Merchant aggregates as hourly snapshots, computed from the label store.

A merchant's volume and fraud rate mix every user's transactions with labels that
arrive weeks later, on other partitions; as a batch view over the shared label
store they are exact however many instances consume, and point-in-time correct
by construction. The snapshot at ``s`` uses only transactions with event time in
``(s - window, s]`` and only labels known at ``s`` (label event time ``<= s``).

Its row is stamped (Feast's event timestamp) when it can first be known, not at
``s``: the features service computes it once every partition is past ``s`` plus the
allowed lateness, so the online store holds at event time ``T`` the snapshot of
about ``T - lateness``. Training joins by the stamp, so it sees what serving could
have seen; ``merchant_snapshot_unix`` keeps ``s``, the data's as-of time.

Pure: frames in, a frame out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from berg.features.schema import MERCHANT_AS_OF, MERCHANT_FRAUD_WINDOW, MERCHANT_KEY

__all__ = ["merchant_snapshots"]

_DAY = pd.Timedelta(days=1)


def merchant_snapshots(
    transactions: pd.DataFrame,
    labels: pd.DataFrame,
    snapshot_times: Sequence[datetime],
    *,
    available_after: timedelta = timedelta(0),
) -> pd.DataFrame:
    """One row per (snapshot, merchant with a transaction in the fraud window before it).

    Args:
        transactions: label-store transactions (``event_id``, ``event_time``, ``merchant_id``, ``amount``).
        labels: label-store labels (``transaction_event_id``, ``event_time``, ``is_fraud``).
        snapshot_times: aware datetimes.
        available_after: how long after its time a snapshot can be computed (the allowed lateness).

    Returns:
        ``merchant_id``, the merchant features (``merchant_snapshot_unix``: the snapshot time) and
        ``event_timestamp``: the snapshot time plus ``available_after``.
    """
    fraud_window = pd.Timedelta(MERCHANT_FRAUD_WINDOW)
    tx = transactions[["event_id", "event_time", MERCHANT_KEY, "amount"]]
    first_label = labels.sort_values("event_time").drop_duplicates("transaction_event_id")
    known = first_label[["transaction_event_id", "event_time", "is_fraud"]].rename(
        columns={"transaction_event_id": "event_id", "event_time": "label_time"}
    )
    tx = tx.merge(known, on="event_id", how="left")
    # Without any label the merged columns come back untyped.
    tx["label_time"] = pd.to_datetime(tx["label_time"], utc=True)
    tx["is_fraud"] = tx["is_fraud"].astype("boolean").fillna(False).astype(bool)
    frames = []
    for snapshot in snapshot_times:
        at = pd.Timestamp(snapshot)
        window = tx[(tx["event_time"] > at - fraud_window) & (tx["event_time"] <= at)]
        if window.empty:
            continue
        label_known = window["label_time"].notna() & (window["label_time"] <= at)
        day = window["event_time"] > at - _DAY
        grouped = pd.DataFrame(
            {
                MERCHANT_KEY: window[MERCHANT_KEY],
                "tx_30d": 1,
                "fraud_known": (label_known & window["is_fraud"]).astype("int64"),
                "label_known": label_known.astype("int64"),
                "tx_24h": day.astype("int64"),
                "amount_24h": window["amount"].where(day, 0.0),
            }
        ).groupby(MERCHANT_KEY, sort=True)
        sums = grouped.sum()
        frame = pd.DataFrame(
            {
                MERCHANT_KEY: sums.index.astype(str),
                "merchant_tx_count_24h": sums["tx_24h"].to_numpy(dtype="int64"),
                "merchant_amount_mean_24h": np.where(
                    sums["tx_24h"] > 0, sums["amount_24h"] / sums["tx_24h"].where(sums["tx_24h"] > 0, 1), np.nan
                ),
                "merchant_fraud_rate_30d": (sums["fraud_known"] / sums["tx_30d"]).to_numpy(dtype="float64"),
                "merchant_labels_known_30d": sums["label_known"].to_numpy(dtype="int64"),
                MERCHANT_AS_OF: at.timestamp(),
                "event_timestamp": at + pd.Timedelta(available_after),
            }
        )
        frames.append(frame)
    if not frames:
        return pd.DataFrame(
            columns=[
                MERCHANT_KEY,
                "merchant_tx_count_24h",
                "merchant_amount_mean_24h",
                "merchant_fraud_rate_30d",
                "merchant_labels_known_30d",
                MERCHANT_AS_OF,
                "event_timestamp",
            ]
        )
    return pd.concat(frames, ignore_index=True)
