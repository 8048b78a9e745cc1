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

import functools
import operator
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from berg.features.feature_set import EVENT_TIMESTAMP, REQUEST_EVENT_UNIX, FeatureSet, StreamingView
from berg.features.label_store import LabelStore
from berg.features.recompute import (
    DEFAULT_SAMPLE_SIZE,
    DEFAULT_SEED,
    RELATIVE_TOLERANCE,
    Mismatch,
    RecomputeError,
    RecomputeResult,
    as_float,
    compare_values,
    entity_label,
    from_micros,
    on_demand_rows,
    sample_rows,
    streaming_row,
    to_micros,
)

__all__ = ["check_recompute"]

_SNAPSHOT_WHY = "snapshot view: not recomputed yet (it reads labels, which the recompute must read by arrival time)"
_UNDECLARED_WHY = "not a view of the use case's feature set: no declared producer to re-run"


class _Entities:
    """One view's events, per entity: event times and the fields the view reads, as arrays."""

    def __init__(self, view: StreamingView, events: pd.DataFrame) -> None:
        self.view = view
        events = events.dropna(subset=[view.aggregation.key])
        times = to_micros(events["event_time"]) if len(events) else np.zeros(0, dtype=np.int64)
        fields = {name: events[name].to_numpy() for name in view.aggregation.fields}
        positions = events.groupby(view.aggregation.key, sort=False).indices if len(events) else {}
        self._by_key = {
            key: (times[where], {name: values[where] for name, values in fields.items()})
            for key, where in positions.items()
        }
        self._none = (np.zeros(0, dtype=np.int64), {name: values[:0] for name, values in fields.items()})

    def row(self, key: Any, prediction_us: int) -> dict[str, float]:
        known = key is not None and not pd.isna(key)
        times, values = self._by_key.get(key, self._none) if known else self._none
        return streaming_row(self.view, times, values, prediction_us)


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
    rows = sampled.to_dict("records")
    prediction_us = to_micros(sampled[prediction_time_column]) if len(sampled) else np.zeros(0, dtype=np.int64)
    events = _read_events(labels, features, streaming, on_demand is not None, sampled, event_id_column, prediction_us)
    by_view = {view.name: _Entities(view, events) for view in streaming} if rows else {}

    compared: dict[str, int] = {view.name: 0 for view in streaming}
    mismatches: list[Mismatch] = []
    recomputed: list[dict[str, float]] = []
    for row, at_us in zip(rows, prediction_us, strict=True):
        values: dict[str, float] = {}
        for view in streaming:
            expected = by_view[view.name].row(row[view.aggregation.key], int(at_us))
            values |= expected
            for column in (name for name in view.aggregation.feature_names if name in frame.columns):
                compared[view.name] += 1
                if not compare_values(expected[column], row[column], rel_tol):
                    mismatches.append(
                        _mismatch(
                            view.name, column, row, prediction_time_column, [view.aggregation.key], expected[column]
                        )
                    )
        recomputed.append(values)

    if on_demand is not None:
        compared[on_demand.name] = 0
    if on_demand is not None and rows:
        # The request is the scored event as the label store holds it, not the frame's copy of it.
        requests = events.drop_duplicates("event_id").set_index("event_id")
        wanted = [row[event_id_column] for row in rows]
        absent = [event_id for event_id in wanted if event_id not in requests.index]
        if absent:
            raise ValueError(f"scored events {absent[:5]} of the training frame are not in the label store")
        chosen = requests.loc[wanted]
        request_columns = {name: chosen[name].to_numpy() for name in on_demand.request_fields}
        request_columns[REQUEST_EVENT_UNIX] = to_micros(chosen["event_time"]) / 1e6
        recomputed_views = {view.name for view in streaming}
        inputs = {
            name: [values[name] for values in recomputed]
            if source.view in recomputed_views
            else [row[name] for row in rows]
            for source in on_demand.inputs
            for name in source.features
        }
        expected_frame = on_demand_rows(on_demand, request_columns, inputs)
        for position, row in enumerate(rows):
            for column in (spec.name for spec in on_demand.features if spec.name in frame.columns):
                compared[on_demand.name] += 1
                expected_value = expected_frame[column].iloc[position]
                if not compare_values(expected_value, row[column], rel_tol):
                    mismatches.append(
                        _mismatch(
                            on_demand.name, column, row, prediction_time_column, [event_id_column], expected_value
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


def _mismatch(view: str, column: str, row: Mapping[str, Any], time: str, keys: list[str], expected: Any) -> Mismatch:
    when = pd.Timestamp(row[time]).isoformat()
    return Mismatch(view, column, when, entity_label(keys, row), as_float(row[column]), as_float(expected))


def _read_events(
    labels: LabelStore,
    features: FeatureSet,
    streaming: list[StreamingView],
    with_requests: bool,
    sampled: pd.DataFrame,
    event_id_column: str,
    prediction_us: np.ndarray,
) -> pd.DataFrame:
    """The scored events the sampled rows can need: their entities' histories and their own requests."""
    if not len(prediction_us) or not (streaming or with_requests):
        return pd.DataFrame(columns=["event_id", "event_time"])
    reach_us = max(
        (view.ttl // pd.Timedelta(microseconds=1) + view.aggregation.longest_window_us for view in streaming),
        default=0,
    )
    columns = [field for view in streaming for field in (view.aggregation.key, *view.aggregation.fields)]
    wanted: list[ds.Expression] = [
        ds.field(view.aggregation.key).isin(sampled[view.aggregation.key].dropna().unique().tolist())
        for view in streaming
    ]
    if with_requests and features.on_demand is not None:
        columns += features.on_demand.request_fields
        wanted.append(ds.field("event_id").isin(sampled[event_id_column].tolist()))
    # The newest sampled row's own event is its request: read up to and including it.
    return labels.read(
        labels.scored,
        start=from_micros(int(prediction_us.min()) - reach_us - 1),
        end=from_micros(int(prediction_us.max()) + 1),
        filter_expression=functools.reduce(operator.or_, wanted),
        columns=list(dict.fromkeys(columns)),
    )
