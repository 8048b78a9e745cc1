"""The recompute check over a training frame: read the label store once, recompute the sampled rows.

The I/O half of :mod:`berg.features.recompute`: one read of the scored events the sampled rows
can need (from the oldest prediction time less the longest TTL and window to the newest), then,
per sampled row, each streaming view's values from the row's entity's events before its
prediction time and the on-demand view's from the row's own scored event (the request) and those
values. Snapshot views, and views the use case's feature set does not declare, are listed as not
recomputed::

    result = check_recompute(frame, labels, use_case.features, describe_features(store, service).features)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from berg.features.feature_set import EVENT_TIMESTAMP, REQUEST_EVENT_UNIX, FeatureSet, StreamingView
from berg.features.label_store import LabelStore
from berg.features.recompute import (
    DEFAULT_SAMPLE_SIZE,
    DEFAULT_SEED,
    RELATIVE_TOLERANCE,
    Mismatch,
    RecomputeError,
    RecomputeResult,
    compare_values,
    entity_label,
    on_demand_row,
    sample_rows,
    streaming_row,
    to_micros,
)

__all__ = ["check_recompute"]

_EPOCH = pd.Timestamp(0, tz="UTC")
_SNAPSHOT_WHY = "snapshot view: not recomputed yet (it reads labels, which the recompute must read by arrival time)"
_UNDECLARED_WHY = "not a view of the use case's feature set: no declared producer to re-run"


def _moment(micros: int) -> datetime:
    moment: datetime = (_EPOCH + pd.Timedelta(microseconds=micros)).to_pydatetime()
    return moment


class _Entities:
    """One view's events, per entity: event times and the fields the view reads."""

    def __init__(self, view: StreamingView, events: pd.DataFrame) -> None:
        self.view = view
        self._times = to_micros(events["event_time"]) if len(events) else np.zeros(0, dtype=np.int64)
        self._events = events
        self._positions = events.groupby(view.aggregation.key, sort=False).indices if len(events) else {}

    def row(self, key: Any, prediction_us: int) -> dict[str, float]:
        positions = self._positions.get(key) if key is not None and not pd.isna(key) else None
        if positions is None:
            positions = np.zeros(0, dtype=np.int64)
        fields = list(self.view.aggregation.fields)
        return streaming_row(self.view, self._times[positions], self._events.iloc[positions][fields], prediction_us)


def check_recompute(
    frame: pd.DataFrame,
    labels: LabelStore,
    features: FeatureSet,
    feature_views: Mapping[str, str],
    *,
    prediction_time_column: str = EVENT_TIMESTAMP,
    event_id_column: str = "event_id",
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = DEFAULT_SEED,
    rel_tol: float = RELATIVE_TOLERANCE,
    raise_on_mismatch: bool = True,
) -> RecomputeResult:
    """Recompute a seeded sample of ``frame``'s rows from ``labels`` cut at each row's prediction time.

    Args:
        frame: A training frame built with ``with_as_of=True`` (the as-of columns are compared too): the
            views' join keys, the prediction time, the scored event's id, the feature columns.
        labels: The label store the scored events are read from.
        features: The use case's feature set: the declared producers.
        feature_views: Feature column -> view (:func:`berg.features.dataset.describe_features`' ``features``).
        prediction_time_column: Each row's prediction time.
        event_id_column: The scored event's id: the on-demand view's request is read back by it.
        sample_size: Rows to recompute (:data:`berg.features.recompute.DEFAULT_SAMPLE_SIZE`: why 90).
        seed: The sample's seed.
        rel_tol: How close floats must be.
        raise_on_mismatch: Raise :class:`~berg.features.recompute.RecomputeError` on any mismatch (default).

    Raises:
        RecomputeError: a sampled value differs from its recompute, naming view, feature, row and values.
    """
    in_frame = set(feature_views.values())
    streaming = [view for view in features.streaming if view.name in in_frame]
    on_demand = features.on_demand if features.on_demand and features.on_demand.name in in_frame else None
    declared = {view.name for view in features.views} | ({on_demand.name} if on_demand else set())
    not_recomputed = {view.name: _SNAPSHOT_WHY for view in features.snapshots if view.name in in_frame}
    not_recomputed |= {view: _UNDECLARED_WHY for view in dict.fromkeys(feature_views.values()) if view not in declared}

    sampled = frame.iloc[sample_rows(len(frame), sample_size, seed)]
    prediction_us = to_micros(sampled[prediction_time_column]) if len(sampled) else np.zeros(0, dtype=np.int64)
    events = _read_events(labels, features, streaming, on_demand is not None, prediction_us)
    by_view = {
        view.name: _Entities(view, events.dropna(subset=[view.aggregation.key]) if len(events) else events)
        for view in streaming
    }
    requests = events.drop_duplicates("event_id").set_index("event_id") if on_demand and len(events) else None

    compared: dict[str, int] = {view.name: 0 for view in streaming}
    if on_demand is not None:
        compared[on_demand.name] = 0
    mismatches: list[Mismatch] = []
    for (_, row), at_us in zip(sampled.iterrows(), prediction_us, strict=True):
        when = pd.Timestamp(row[prediction_time_column]).isoformat()
        recomputed: dict[str, float] = {}
        for view in streaming:
            expected = by_view[view.name].row(row[view.aggregation.key], int(at_us))
            recomputed |= expected
            for column in (name for name in view.aggregation.feature_names if name in frame.columns):
                compared[view.name] += 1
                if not compare_values(expected[column], row[column], rel_tol):
                    mismatches.append(
                        Mismatch(
                            view.name,
                            column,
                            when,
                            entity_label([view.aggregation.key], row),
                            _float(row[column]),
                            expected[column],
                        )
                    )
        if on_demand is None:
            continue
        event = requests.loc[row[event_id_column]] if requests is not None else None
        if event is None or isinstance(event, pd.DataFrame):
            raise ValueError(f"the scored event {row[event_id_column]!r} is not in the label store once")
        request = {name: event[name] for name in on_demand.request_fields}
        request[REQUEST_EVENT_UNIX] = to_micros(event["event_time"]) / 1e6
        recomputed_views = {view.name for view in streaming}
        inputs = {
            name: recomputed[name] if source.view in recomputed_views else row[name]
            for source in on_demand.inputs
            for name in source.features
        }
        expected = on_demand_row(on_demand, request, inputs)
        for column in (spec.name for spec in on_demand.features if spec.name in frame.columns):
            compared[on_demand.name] += 1
            if not compare_values(expected[column], row[column], rel_tol):
                mismatches.append(
                    Mismatch(
                        on_demand.name,
                        column,
                        when,
                        entity_label([event_id_column], row),
                        _float(row[column]),
                        expected[column],
                    )
                )

    result = RecomputeResult(
        rows=len(frame),
        rows_sampled=len(sampled),
        seed=seed,
        compared=compared,
        mismatches=tuple(mismatches),
        not_recomputed=not_recomputed,
    )
    if raise_on_mismatch and not result.ok:
        raise RecomputeError(result)
    return result


def _float(value: Any) -> float:
    return float("nan") if value is None or pd.isna(value) else float(value)


def _read_events(
    labels: LabelStore,
    features: FeatureSet,
    streaming: list[StreamingView],
    with_requests: bool,
    prediction_us: np.ndarray,
) -> pd.DataFrame:
    """The scored events the sampled rows can need: their views' histories and their own requests."""
    if not len(prediction_us) or not (streaming or with_requests):
        return pd.DataFrame(columns=["event_id", "event_time"])
    reach_us = max(
        (view.ttl // pd.Timedelta(microseconds=1) + view.aggregation.longest_window_us for view in streaming),
        default=0,
    )
    columns = [field for view in streaming for field in (view.aggregation.key, *view.aggregation.fields)]
    if with_requests and features.on_demand is not None:
        columns += features.on_demand.request_fields
    # The newest sampled row's own event is its request: read up to and including it.
    return labels.read(
        labels.scored,
        start=_moment(int(prediction_us.min()) - reach_us - 1),
        end=_moment(int(prediction_us.max()) + 1),
        columns=list(dict.fromkeys(columns)),
    )
