"""Step 1, build_dataset: labelled events -> Feast point-in-time features -> temporal splits.

The entity frame is the label store's scored events (transactions, say) in a window
whose labels are complete (every event at least the card's label horizon older than
the newest event held), with the card's target. Features come from the feature
service, as the scorer saw them (strictly before each event). The leakage
check runs on the whole frame and fails the step; then a seeded sample of its rows is recomputed
from the label store cut at each row's prediction time (:mod:`berg.features.recompute_check`), and
any value the recompute cannot reproduce fails the step too. The latest part of the window is
the test split, the part before it validation, the rest training.

The test rows are then joined once more with the store frozen at the start of the test window
(``test_frozen.parquet``, :func:`frozen_test_frame`): the evaluation scores the challenger on both, and a
feature that only scores well while it can see the test window's own data shows as a gap between them
(:mod:`berg_pipelines.runtime.holdout`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from feast import FeatureStore

from berg.features.dataset import build_training_frame, describe_features
from berg.features.feature_set import EVENT_TIMESTAMP, REQUEST_EVENT_UNIX
from berg.features.label_store import LabelStore
from berg.features.leakage import check_leakage
from berg.features.recompute import DEFAULT_SAMPLE_SIZE, DEFAULT_SEED
from berg.features.recompute_check import check_recompute
from berg.problem.card import ProblemCard
from berg.usecase import UseCase
from berg_pipelines.runtime.frames import DatasetInfo, write_frame

__all__ = [
    "FROZEN_TEST",
    "DatasetError",
    "DatasetWindow",
    "build_dataset",
    "frozen_test_frame",
    "label_complete_window",
]

log = logging.getLogger(__name__)

FROZEN_TEST = "test_frozen"
"""The test rows with the features of the store frozen at the start of the test window (not a split)."""


class DatasetError(RuntimeError):
    """The data cannot make a training set (too few rows, no positives, leakage)."""


@dataclass(frozen=True)
class DatasetWindow:
    start: datetime
    end: datetime


def label_complete_window(labels: LabelStore, card: ProblemCard, days: float) -> DatasetWindow:
    """The ``days`` before the label horizon: every label of a scored event in it is in.

    Labels are known up to the newest one held (they arrive on their own topic, possibly behind the
    scored events), so the window ends a horizon before the older of the newest scored event and the
    newest label.
    """
    latest = labels.latest_event_time(labels.scored)
    if latest is None:
        raise DatasetError("the label store holds no scored events yet; run the features service on some traffic")
    newest_label = labels.latest_event_time(labels.labels)
    if newest_label is not None:
        latest = min(latest, newest_label)
    end = latest - timedelta(days=card.target.label_horizon_days)
    return DatasetWindow(start=end - timedelta(days=days), end=end)


def frozen_test_frame(
    store: FeatureStore,
    test: pd.DataFrame,
    entity_columns: list[str],
    feature_service: str,
    frozen_at: pd.Timestamp,
) -> pd.DataFrame:
    """The test rows (same order, ids, labels, amounts and request columns) with every stored view joined at
    ``frozen_at`` instead of each row's own time: one more historical retrieval, over these rows only.

    The join's prediction time is ``frozen_at`` (strictly before it, as for every row), so a view contributes
    only rows stamped before the test window and its TTL counts from there. The request columns keep the
    event's own values (``event_unix`` is the real event time): what the scorer would compute from the request
    itself is not frozen. The returned frame's time column is the rows' real event time again.
    """
    rows = test[entity_columns].copy()
    rows[EVENT_TIMESTAMP] = pd.Series([frozen_at] * len(rows), index=rows.index, dtype=test[EVENT_TIMESTAMP].dtype)
    frozen = build_training_frame(store, rows, feature_service, with_as_of=True)
    frozen[EVENT_TIMESTAMP] = test[EVENT_TIMESTAMP]
    return frozen


def build_dataset(
    store: FeatureStore,
    labels: LabelStore,
    card: ProblemCard,
    use_case: UseCase,
    window: DatasetWindow,
    output: Path,
    *,
    feature_service: str,
    validation_share: float = 0.15,
    test_share: float = 0.15,
    min_rows: int = 200,
    min_positives: int = 10,
    recompute_sample: int = DEFAULT_SAMPLE_SIZE,
    recompute_seed: int = DEFAULT_SEED,
) -> DatasetInfo:
    """Write ``train.parquet``, ``validation.parquet``, ``test.parquet``, ``test_frozen.parquet`` and
    ``info.json`` into ``output``.

    The entity frame's target is the use case's label join target; the model's features are the
    feature service's plus the use case's request features (fields of the scored event read as they are).

    Raises:
        DatasetError: too few rows or positives in a split, naming the window.
        berg.features.leakage.LeakageError: a feature leaks the label or the future, or (its subclass
            berg.features.recompute.RecomputeError) a sampled value differs from its recompute.
    """
    amount = use_case.label_join.amount
    if amount is None:
        raise DatasetError(
            f"use case {use_case.name!r} names no money field in its label join: the evaluation prices decisions by it"
        )
    entities = labels.labelled_events(
        window.start, window.end, timedelta(days=card.target.label_horizon_days), use_case.label_join
    )
    if len(entities) < min_rows:
        raise DatasetError(
            f"{len(entities)} labelled events in {window.start:%Y-%m-%d %H:%M} .. {window.end:%Y-%m-%d %H:%M}; "
            f"need at least {min_rows}: simulate more traffic or widen the window"
        )
    entities = entities.rename(columns={"event_time": EVENT_TIMESTAMP})
    entities[REQUEST_EVENT_UNIX] = entities[EVENT_TIMESTAMP].map(lambda t: t.timestamp())
    entities[card.target.column] = entities[use_case.label_join.target].astype("int64")
    entity_columns = list(entities.columns)
    frame = build_training_frame(store, entities, feature_service, with_as_of=True)
    layout = describe_features(store, feature_service)
    check_leakage(
        frame,
        label_column=card.target.column,
        prediction_time_column=EVENT_TIMESTAMP,
        feature_columns=layout.features,
        as_of_columns=dict(layout.as_of),
    )
    # Only reads: the frame that is split and written below is the one Feast returned.
    recompute = check_recompute(
        frame,
        labels,
        use_case.features,
        layout.features,
        use_case.label_join,
        prediction_time_column=EVENT_TIMESTAMP,
        sample_size=recompute_sample,
        seed=recompute_seed,
    )
    features = (*layout.features, *use_case.features.request_features)
    frame = frame.sort_values([EVENT_TIMESTAMP, "event_id"], kind="stable").reset_index(drop=True)
    times = frame[EVENT_TIMESTAMP]
    validation_from = times.quantile(1 - validation_share - test_share, interpolation="nearest")
    test_from = times.quantile(1 - test_share, interpolation="nearest")
    splits = {
        "train": frame[times < validation_from],
        "validation": frame[(times >= validation_from) & (times < test_from)],
        "test": frame[times >= test_from],
    }
    label = card.target.column
    for name, split in splits.items():
        positives = int(split[label].sum())
        if positives < min_positives or len(split) - positives < min_positives:
            raise DatasetError(
                f"the {name} split ({len(split)} rows) has {positives} positive rows; need at least {min_positives} "
                f"of each class: simulate more traffic or widen the window"
            )
    started = time.perf_counter()
    frozen = frozen_test_frame(store, splits["test"], entity_columns, feature_service, pd.Timestamp(test_from))
    log.info("test rows rejoined at %s in %.2f s", pd.Timestamp(test_from).isoformat(), time.perf_counter() - started)
    output.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        write_frame(split, output / f"{name}.parquet")
    write_frame(frozen, output / f"{FROZEN_TEST}.parquet")
    info = DatasetInfo(
        label_column=label,
        amount_column=amount,
        feature_columns=features,
        feature_service=feature_service,
        window_start=window.start.isoformat(),
        window_end=window.end.isoformat(),
        split_times=(pd.Timestamp(validation_from).isoformat(), pd.Timestamp(test_from).isoformat()),
        rows={name: len(split) for name, split in splits.items()},
        positives={name: int(split[label].sum()) for name, split in splits.items()},
        recompute=recompute.as_dict(),
        frozen_test={
            "file": f"{FROZEN_TEST}.parquet",
            "frozen_at": pd.Timestamp(test_from).isoformat(),
            "rows": len(frozen),
            "of_split": "test",
        },
    )
    info.write(output)
    return info
