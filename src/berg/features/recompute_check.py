"""The recompute check over a training frame: read the label store once, recompute the sampled rows.

The I/O half of :mod:`berg.features.recompute`: one read of the scored events the sampled rows
can need (from the oldest prediction time less the longest TTL and window to the newest), then,
per sampled row, each streaming view's values from the row's entity's events before its
prediction time, each snapshot view's from its key's events and the labels arrived by the
snapshot's time, and the on-demand view's from the row's own scored event (the request) and those
values. A view of the feature service the use case does not declare has no producer to re-run: it
is refused (:class:`UnprovenViewError`) unless the use case trusts it
(:attr:`~berg.features.feature_set.FeatureSet.trusted`), and then listed with its reason::

    result = check_recompute(
        frame, labels, use_case.features, describe_features(store, service).features, use_case.label_join
    )
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from berg.features.feature_set import (
    ARRIVAL_TIME,
    EVENT_TIMESTAMP,
    REQUEST_EVENT_UNIX,
    FeatureSet,
    SnapshotView,
    StreamingView,
)
from berg.features.label_store import LabelStore
from berg.features.leakage import LeakageError, LeakageFinding, LeakageReport
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
    snapshot_row,
    streaming_row,
    to_micros,
)
from berg.usecase import LabelJoin

__all__ = ["UnprovenViewError", "check_recompute"]

_NO_LABEL_US = np.iinfo(np.int64).max


class UnprovenViewError(LeakageError):
    """Views of the feature service with no producer to re-run, which the use case does not trust either."""

    def __init__(self, service_views: list[str]) -> None:
        findings = tuple(
            LeakageFinding(
                kind="unproven_view",
                subject=view,
                message=(
                    f"view {view!r} is not declared in the use case's feature set, so no producer can be re-run to "
                    "prove its values: declare it, or mark it trusted with a reason (FeatureSet.trusted)"
                ),
            )
            for view in service_views
        )
        super().__init__(
            LeakageReport(rows=0, features_checked=(), views_checked=tuple(service_views), findings=findings)
        )


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
    label_join: LabelJoin,
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
        label_join: How a label names the event it judges, and its verdict (snapshot views read labels).
        prediction_time_column: Each row's prediction time.
        event_id_column: The scored event's id: the on-demand view's request is read back by it.
        sample_size: Rows to recompute (:data:`berg.features.recompute.DEFAULT_SAMPLE_SIZE`: why 90).
        seed: The sample's seed.
        rel_tol: How close floats must be.
        raise_on_mismatch: Raise :class:`~berg.features.recompute.RecomputeError` on any mismatch (default).

    Raises:
        UnprovenViewError: a view of the feature service has no declared producer and is not trusted.
        RecomputeError: a sampled value differs from its recompute, naming view, feature, row and values.
    """
    in_frame = set(feature_views.values())
    streaming = [view for view in features.streaming if view.name in in_frame]
    snapshots = [view for view in features.snapshots if view.name in in_frame]
    on_demand = features.on_demand if features.on_demand and features.on_demand.name in in_frame else None
    declared = {view.name for view in features.views} | ({on_demand.name} if on_demand else set())
    trusted = {view.name: view.reason for view in features.trusted}
    undeclared = [view for view in dict.fromkeys(feature_views.values()) if view not in declared]
    unproven = [view for view in undeclared if view not in trusted]
    if unproven:
        raise UnprovenViewError(unproven)
    missing_as_of = [view for view in snapshots if view.as_of not in frame.columns]
    if missing_as_of:
        raise ValueError(
            f"the training frame lacks the as-of column of {[view.name for view in missing_as_of]}: "
            "build it with with_as_of=True"
        )

    sampled = frame.iloc[sample_rows(len(frame), sample_size, seed)]
    rows = sampled.to_dict("records")
    prediction_us = to_micros(sampled[prediction_time_column]) if len(sampled) else np.zeros(0, dtype=np.int64)
    events = _read_events(labels, features, streaming, on_demand is not None, sampled, event_id_column, prediction_us)
    by_view = {view.name: _Entities(view, events) for view in streaming} if rows else {}
    by_snapshot = {view.name: _Snapshots(view, labels, label_join, sampled) for view in snapshots} if rows else {}

    compared: dict[str, int] = {view.name: 0 for view in streaming} | {view.name: 0 for view in snapshots}
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
        for snapshot in snapshots:
            found = by_snapshot[snapshot.name].compare(row, int(at_us), rel_tol)
            compared[snapshot.name] += found.compared
            mismatches += [
                _mismatch(snapshot.name, column, row, prediction_time_column, [snapshot.entity.key], expected, why)
                for column, expected, why in found.mismatches
            ]
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
        trusted={view: trusted[view] for view in undeclared},
    )
    if raise_on_mismatch and not result.ok:
        raise RecomputeError(result)
    return result


def _mismatch(
    view: str, column: str, row: Mapping[str, Any], time: str, keys: list[str], expected: Any, why: str = ""
) -> Mismatch:
    when = pd.Timestamp(row[time]).isoformat()
    return Mismatch(view, column, when, entity_label(keys, row), as_float(row[column]), as_float(expected), why)


@dataclass(frozen=True)
class _Compared:
    compared: int
    mismatches: list[tuple[str, float, str]]
    """(column, recomputed value, why it cannot be right beyond the value, or "")."""


class _Snapshots:
    """One snapshot view's inputs for the sampled rows: their keys' scored events and those events' first labels
    by arrival, read once; then each row's snapshot recomputed at the time its as-of column names."""

    def __init__(self, view: SnapshotView, labels: LabelStore, join: LabelJoin, sampled: pd.DataFrame) -> None:
        self.view = view
        key = view.entity.key
        self._every_us = view.every // pd.Timedelta(microseconds=1)
        claimed = pd.to_numeric(sampled[view.as_of], errors="coerce").dropna()
        wanted = sampled.loc[claimed.index, key].dropna().unique().tolist()
        self._by_key: dict[Any, tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]] = {}
        if not len(claimed) or not wanted:
            return
        reach_us = view.window // pd.Timedelta(microseconds=1)
        first_us = round(float(claimed.min()) * 1e6) - reach_us
        last_us = round(float(claimed.max()) * 1e6)
        fields = sorted({a.field for a in view.aggregates if a.field is not None} - {key})
        events = labels.read(
            labels.scored,
            start=from_micros(first_us),
            end=from_micros(last_us + 1),
            filter_expression=ds.field(key).isin(wanted),
            columns=[key, *fields],
        )
        # A label arrives no earlier than it was issued, and is issued no earlier than the event it judges:
        # every label that can be known at a sampled snapshot has an event time in this range.
        verdicts = labels.read(labels.labels, start=from_micros(first_us), end=from_micros(last_us + 1))
        verdicts = verdicts[verdicts[join.subject_id].isin(set(events["event_id"]))]
        first = verdicts.sort_values([ARRIVAL_TIME, "event_id"], kind="stable").drop_duplicates(join.subject_id)
        arrival = dict(zip(first[join.subject_id], to_micros(first[ARRIVAL_TIME]) if len(first) else [], strict=True))
        verdict = dict(zip(first[join.subject_id], first[join.target].astype(bool), strict=True))
        ids = events["event_id"].to_numpy()
        arrivals = np.array([arrival.get(event_id, _NO_LABEL_US) for event_id in ids], dtype=np.int64)
        positives = np.array([bool(verdict.get(event_id, False)) for event_id in ids], dtype=bool)
        times = to_micros(events["event_time"]) if len(events) else np.zeros(0, dtype=np.int64)
        for value, where in (events.groupby(key, sort=False).indices if len(events) else {}).items():
            self._by_key[value] = (
                times[where],
                {name: events[name].to_numpy()[where] for name in fields},
                arrivals[where],
                positives[where],
            )

    def compare(self, row: Mapping[str, Any], prediction_us: int, rel_tol: float) -> _Compared:
        view = self.view
        columns = [aggregate.name for aggregate in view.aggregates]
        claimed = as_float(row[view.as_of])
        if math.isnan(claimed):
            # No snapshot joined: then no value either.
            found = [(column, math.nan, "") for column in columns if not compare_values(math.nan, row.get(column))]
            return _Compared(len(columns), found)
        snapshot_us = round(claimed * 1e6)
        if snapshot_us % self._every_us or snapshot_us >= prediction_us:
            why = f"its snapshot time {from_micros(snapshot_us).isoformat()} is " + (
                "not on the view's period" if snapshot_us % self._every_us else "not before the prediction time"
            )
            return _Compared(1, [(view.as_of, math.nan, why)])
        key = row.get(view.entity.key)
        inputs = self._by_key.get(key) if key is not None and not pd.isna(key) else None
        expected = snapshot_row(view, snapshot_us, *inputs) if inputs is not None else None
        if expected is None:
            why = f"the key has no event in the snapshot's window before {from_micros(snapshot_us).isoformat()}"
            return _Compared(1, [(view.as_of, math.nan, why)])
        found = [
            (column, expected[column], "")
            for column in columns
            if column in row and not compare_values(expected[column], row[column], rel_tol)
        ]
        return _Compared(len(columns), found)


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
