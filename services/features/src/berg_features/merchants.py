"""Merchant aggregates as hourly snapshots, computed from the label store.

A merchant's volume and fraud rate mix every user's transactions with labels that
arrive weeks later, on other partitions; as a batch view over the shared label
store they are exact however many instances consume, and point-in-time correct
by construction. The snapshot at ``s`` uses only transactions with event time in
``(s - window, s]`` and only labels known at ``s`` (label event time ``<= s``).

Its row is stamped (Feast's event timestamp, and ``merchant_available_unix``) when
it became available, not at ``s``: the features service computes it once every
source partition is past ``s`` plus the allowed lateness, that is at the event time
of the slowest partition's first transaction at or after ``s + lateness``
(:func:`snapshot_availability`). Transactions of the faster partitions after
``s + lateness`` are scored before that, with the previous snapshot; training joins
by the stamp, so it sees what serving saw. ``merchant_snapshot_unix`` keeps ``s``,
the data's as-of time.

Pure: frames in, a frame out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from berg.features.schema import MERCHANT_AS_OF, MERCHANT_AVAILABLE, MERCHANT_FRAUD_WINDOW, MERCHANT_KEY

__all__ = ["availability_changed_after", "merchant_snapshots", "snapshot_availability", "visible_snapshots"]

_DAY = pd.Timedelta(days=1)
_PARTITION = "source_partition"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _times_by_partition(transactions: pd.DataFrame, partitions: Collection[int]) -> list[np.ndarray]:
    """Each partition's transaction event times, sorted, in microseconds since the epoch."""
    micros = (pd.to_datetime(transactions["event_time"], utc=True) - _EPOCH) // _MICROSECOND
    in_partition = transactions[_PARTITION].to_numpy()
    return [np.sort(micros[in_partition == partition].to_numpy(dtype="int64")) for partition in partitions]


def snapshot_availability(
    transactions: pd.DataFrame,
    snapshot_times: Sequence[datetime],
    *,
    lateness: timedelta,
    partitions: Collection[int],
) -> list[datetime | None]:
    """When each snapshot became available: ``max`` over ``partitions`` of the partition's earliest
    transaction event time at or after ``s + lateness`` (the moment the low watermark passed ``s``).

    ``None`` where some partition has no such transaction among ``transactions``: not available (yet).

    Args:
        transactions: label-store transactions (``event_time``, ``source_partition``), every one of
            ``partitions`` with event time from the first ``s + lateness`` on, up to as far as they are read.
        snapshot_times: aware datetimes.
        lateness: the allowed lateness.
        partitions: the source partitions the watermark is taken over.
    """
    if not partitions:
        return [None] * len(snapshot_times)
    by_partition = _times_by_partition(transactions, partitions)
    result: list[datetime | None] = []
    for snapshot in snapshot_times:
        crossing = (snapshot + lateness - _EPOCH) // _MICROSECOND
        firsts = [times[index] for times in by_partition if (index := np.searchsorted(times, crossing)) < len(times)]
        crossed = len(firsts) == len(by_partition)
        result.append(_EPOCH + int(max(firsts)) * _MICROSECOND if crossed else None)
    return result


def availability_changed_after(
    transactions: pd.DataFrame, starts: Sequence[datetime], *, partitions: Collection[int]
) -> list[datetime | None]:
    """For transactions that arrived from each of ``starts`` on: from when on they may have changed an
    availability, as the earliest over ``partitions`` of the partition's latest transaction before the start.

    A transaction at ``t`` in partition ``p`` moves the crossings at ``x`` in ``(previous, t]`` (``previous``:
    ``p``'s transaction before it) from ``p``'s next transaction to ``t``; whatever its partition, that
    previous one is no earlier than the returned time. ``None`` where a partition has no transaction
    before the start among ``transactions`` (read further back; from the store's first, everything).
    """
    by_partition = _times_by_partition(transactions, partitions)
    result: list[datetime | None] = []
    for start in starts:
        before = (start - _EPOCH) // _MICROSECOND
        lasts = [times[index - 1] for times in by_partition if (index := np.searchsorted(times, before)) > 0]
        complete = bool(lasts) and len(lasts) == len(by_partition)
        result.append(_EPOCH + int(min(lasts)) * _MICROSECOND if complete else None)
    return result


def visible_snapshots(
    snapshot_times: Sequence[datetime], available: Sequence[datetime | None], next_available: datetime | None
) -> list[tuple[datetime, datetime]]:
    """The snapshots to store, with their stamps: the available ones, less each that became available
    together with the next one.

    When the slowest partition jumps over several snapshot times at once (a gap in its traffic), they
    all become available at the same moment: the online store then holds the newest of them, and a
    training join could not tell rows with one stamp apart. So only the newest of equal stamps is a row.

    Args:
        snapshot_times: consecutive snapshot times.
        available: their availability (:func:`snapshot_availability`).
        next_available: the availability of the snapshot after the last (``None``: not known yet, the
            last one stays; the job recomputes its day when the watermark moves on).
    """
    following = [*available[1:], next_available]
    return [
        (at, stamp)
        for at, stamp, after in zip(snapshot_times, available, following, strict=True)
        if stamp is not None and stamp != after
    ]


def merchant_snapshots(
    transactions: pd.DataFrame,
    labels: pd.DataFrame,
    snapshot_times: Sequence[datetime],
    *,
    available: Sequence[datetime] | None = None,
) -> pd.DataFrame:
    """One row per (snapshot, merchant with a transaction in the fraud window before it).

    Args:
        transactions: label-store transactions (``event_id``, ``event_time``, ``merchant_id``, ``amount``).
        labels: label-store labels (``transaction_event_id``, ``event_time``, ``is_fraud``).
        snapshot_times: aware datetimes.
        available: when each snapshot became available (:func:`snapshot_availability`), in the order of
            ``snapshot_times``; ``None``: at its own time.

    Returns:
        ``merchant_id``, the merchant features (``merchant_snapshot_unix``: the snapshot time,
        ``merchant_available_unix``: when it became available) and ``event_timestamp``: when it
        became available.
    """
    if available is None:
        available = snapshot_times
    if len(available) != len(snapshot_times):
        raise ValueError(f"{len(available)} availability times for {len(snapshot_times)} snapshots")
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
    for snapshot, available_at in zip(snapshot_times, available, strict=True):
        at = pd.Timestamp(snapshot)
        stamp = pd.Timestamp(available_at)
        if stamp < at:
            raise ValueError(f"the snapshot at {at} cannot be available before it, at {stamp}")
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
                MERCHANT_AVAILABLE: stamp.timestamp(),
                "event_timestamp": stamp,
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
                MERCHANT_AVAILABLE,
                "event_timestamp",
            ]
        )
    return pd.concat(frames, ignore_index=True)
