"""Recompute sampled training rows from the scored events cut at each row's prediction time.

The leakage check (:mod:`berg.features.leakage`) trusts each view's as-of column: a self-report
of the producer. This module checks the values themselves: for a sample of training rows it
re-runs each view's declared producer on the data as it was before the row's prediction time
and compares with what the training frame holds. A producer whose window reaches past the
prediction time, a value shifted from a later row, or an on-demand feature that reads something
the request did not carry all give values the recompute cannot reproduce.

What is re-run, and how (an implementation of its own, written from the declarations, not the
features service's code):

- a :class:`~berg.features.feature_set.StreamingView`: the row training gets at prediction time
  ``T`` is the entity's newest row stamped before ``T`` (the join is made one microsecond before
  ``T``, :data:`berg.features.dataset.STRICTLY_BEFORE_OFFSET`), stamped at the event time
  ``t_last`` of the entity's newest event before ``T`` and summarising the entity's events in
  ``(t_last - window, t_last]``; missing when the entity has no event before ``T`` or when
  ``T - 1us - t_last`` exceeds the view's TTL (Feast's bounds are inclusive);
- the :class:`~berg.features.feature_set.OnDemandView`: its function, on the request's fields
  (the scored event's own, and ``event_unix``) and its input columns, recomputed where their
  view is recomputed;
- a :class:`~berg.features.feature_set.SnapshotView`: the snapshot the row holds, at the time ``s``
  its as-of column names, must lie on the view's period and strictly before ``T``, and its every
  aggregate must equal the declaration read over the key's scored events with event time in
  ``(s - window, s]`` and the labels that had *arrived* by ``s``
  (:data:`~berg.features.label_store.ARRIVAL_TIME`; per event, the first label to arrive). A row
  without a snapshot must be missing in every column. Which snapshot was the newest available at
  ``T`` is not re-derived (that needs the features service's watermark): serving an older one is
  stale, not leaky, since it reads only data before ``s < T``.

**Sample size.** A leak touching a share ``p`` of the rows escapes ``n`` independently sampled
rows with probability ``(1 - p) ** n``; for that to be at most ``1 - c``,
``n >= ln(1 - c) / ln(1 - p)``. With ``p = 5%`` and ``c = 99%``: ``ln(0.01) / ln(0.95) = 89.8``,
so :data:`DEFAULT_SAMPLE_SIZE` is 90 (:func:`sample_size`). Sampling without replacement from a
finite frame only lowers the escape probability.

Pure: no I/O (:mod:`berg.features.recompute_check` reads the label store).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from berg.features.feature_set import OnDemandView, SnapshotView, StreamingView
from berg.features.leakage import LeakageError, LeakageFinding, LeakageReport

__all__ = [
    "DEFAULT_SAMPLE_SIZE",
    "DEFAULT_SEED",
    "RELATIVE_TOLERANCE",
    "Mismatch",
    "RecomputeError",
    "RecomputeResult",
    "as_float",
    "compare_values",
    "entity_label",
    "from_micros",
    "on_demand_row",
    "on_demand_rows",
    "sample_rows",
    "sample_size",
    "snapshot_row",
    "streaming_row",
    "to_micros",
]

_STRICTLY_BEFORE_US = 1
"""The join is made this many microseconds before the prediction time (``STRICTLY_BEFORE_OFFSET``)."""
_EPOCH = pd.Timestamp(0, tz="UTC")
_SHOWN = 5  # mismatches written out per feature


def sample_size(leak_share: float = 0.05, confidence: float = 0.99) -> int:
    """The rows to sample so a leak touching ``leak_share`` of them is sampled at least once with ``confidence``.

    ``(1 - leak_share) ** n <= 1 - confidence``, so ``n = ceil(ln(1 - confidence) / ln(1 - leak_share))``.
    """
    if not 0 < leak_share < 1 or not 0 < confidence < 1:
        raise ValueError("leak_share and confidence are probabilities strictly between 0 and 1")
    return math.ceil(math.log(1 - confidence) / math.log(1 - leak_share))


DEFAULT_SAMPLE_SIZE = sample_size()
"""90: a leak touching 5% of the rows is in the sample with probability at least 99%."""
DEFAULT_SEED = 0
"""The sample's seed: the same frame gives the same sample, so a failure can be reproduced."""
RELATIVE_TOLERANCE = 1e-12
"""Floats compared this close: the producers sum exactly (correctly rounded), so a clean value is
equal, and 1e-12 of a Unix time (as-of columns) is still well under a millisecond."""


def sample_rows(rows: int, size: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """``size`` distinct row positions of ``rows`` drawn with ``seed`` (all of them when ``size >= rows``), sorted."""
    if size < 0:
        raise ValueError(f"the sample size must not be negative, got {size}")
    if size >= rows:
        return np.arange(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=size, replace=False))


def to_micros(times: pd.Series | datetime | pd.Timestamp) -> Any:
    """Integer microseconds since the epoch of a datetime or a datetime column (tz-naive read as UTC)."""
    if isinstance(times, pd.Series):
        stamps = pd.to_datetime(times, utc=True)
        return ((stamps - _EPOCH) // pd.Timedelta(microseconds=1)).astype("int64").to_numpy()
    stamp = pd.Timestamp(times)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return int((stamp - _EPOCH) // pd.Timedelta(microseconds=1))


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime ``micros`` microseconds after the epoch (:func:`to_micros` back)."""
    moment: datetime = (_EPOCH + pd.Timedelta(microseconds=micros)).to_pydatetime()
    return moment


def streaming_row(
    view: StreamingView, times_us: np.ndarray, values: Mapping[str, Any], prediction_us: int
) -> dict[str, float]:
    """The values of ``view`` a training row predicted at ``prediction_us`` gets, from one entity's events.

    Args:
        view: The declared view.
        times_us: The entity's events' event times (integer microseconds), any order, any range:
            only those before ``prediction_us`` are read.
        values: The same events' fields (field -> one value per event, positionally; a DataFrame will do),
            those the view reads.
        prediction_us: The row's prediction time.

    Returns:
        Every aggregate and the as-of column (Unix seconds); NaN for all of them when the entity
        has no event before the prediction time or its newest is older than the view's TTL.
    """
    names = view.aggregation.feature_names
    before = times_us < prediction_us
    if not before.any():
        return dict.fromkeys(names, math.nan)
    last_us = int(times_us[before].max())
    ttl_us = view.ttl // pd.Timedelta(microseconds=1)
    if prediction_us - _STRICTLY_BEFORE_US - last_us > ttl_us:
        return dict.fromkeys(names, math.nan)
    row: dict[str, float] = {}
    for aggregate in view.aggregation.aggregates:
        inside = before & (times_us > last_us - aggregate.window_us) & (times_us <= last_us)
        if aggregate.function == "count":
            row[aggregate.name] = float(inside.sum())
            continue
        assert aggregate.field is not None  # every function but count reads a field
        picked = np.asarray(values[aggregate.field])[inside]
        if aggregate.function == "distinct":
            row[aggregate.name] = float(len({str(value) for value in picked}))
        elif aggregate.function == "share":
            row[aggregate.name] = sum(str(value) == aggregate.value for value in picked) / len(picked)
        else:
            numbers = [float(value) for value in picked]
            if aggregate.function == "sum":
                row[aggregate.name] = math.fsum(numbers)
            elif aggregate.function == "mean":
                row[aggregate.name] = math.fsum(numbers) / len(numbers)
            else:
                row[aggregate.name] = max(numbers)
    row[view.as_of] = last_us / 1e6
    return row


def snapshot_row(
    view: SnapshotView,
    snapshot_us: int,
    times_us: np.ndarray,
    values: Mapping[str, Any],
    label_arrival_us: np.ndarray,
    positive: np.ndarray,
) -> dict[str, float] | None:
    """The aggregates of ``view``'s snapshot at ``snapshot_us``, from one key's scored events and their labels.

    Args:
        view: The declared view.
        snapshot_us: The snapshot's time ``s`` (integer microseconds).
        times_us: The key's scored events' event times, any order, any range.
        values: The same events' fields the aggregates read (field -> one value per event, positionally).
        label_arrival_us: Per event, when its first label arrived (integer microseconds; ``np.iinfo(np.int64).max``
            for an event without a label).
        positive: Per event, that first label's verdict (False without one).

    Returns:
        Each aggregate's value; ``None`` when the key has no event in ``(s - window, s]`` (no row).
    """
    if not (((times_us > snapshot_us - _micros(view.window)) & (times_us <= snapshot_us)).any()):
        return None
    row: dict[str, float] = {}
    for aggregate in view.aggregates:
        inside = (times_us > snapshot_us - _micros(aggregate.window)) & (times_us <= snapshot_us)
        count = int(inside.sum())
        known = inside & (label_arrival_us <= snapshot_us)
        if aggregate.function == "count":
            row[aggregate.name] = float(count)
        elif aggregate.function == "labels_known":
            row[aggregate.name] = float(known.sum())
        elif aggregate.function == "positive_share":
            row[aggregate.name] = float((known & positive).sum()) / count if count else math.nan
        else:
            assert aggregate.field is not None  # a mean names its field (SnapshotAggregate checks it)
            numbers = [float(value) for value in np.asarray(values[aggregate.field])[inside]]
            row[aggregate.name] = math.fsum(numbers) / count if count else math.nan
    return row


def _micros(duration: Any) -> int:
    return int(pd.Timedelta(duration) // pd.Timedelta(microseconds=1))


def on_demand_rows(
    view: OnDemandView, requests: Mapping[str, Sequence[Any]], inputs: Mapping[str, Sequence[Any]]
) -> pd.DataFrame:
    """The on-demand view's features for a batch of requests, by running its function once on them.

    Args:
        view: The declared view.
        requests: The requests' fields: ``event_unix`` and each of the view's ``request_fields``, one value per
            request.
        inputs: The input columns (``view.inputs``' features) as each request gets them; NaN for missing.

    Returns:
        One row per request (positionally), the view's feature columns.

    Raises:
        KeyError: a request field is missing (the request does not carry it).
    """
    columns = {name: list(requests[name]) for name in view.request_columns}
    columns |= {name: list(inputs[name]) for source in view.inputs for name in source.features}
    return pd.DataFrame(view.compute(columns))


def on_demand_row(view: OnDemandView, request: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, float]:
    """:func:`on_demand_rows` for one request."""
    out = on_demand_rows(
        view, {name: [value] for name, value in request.items()}, {name: [value] for name, value in inputs.items()}
    )
    return {name: as_float(out[name].iloc[0]) for name in out.columns}


def as_float(value: Any) -> float:
    """A value of a frame or a recompute as a float; missing (None, NaN, NA) is NaN."""
    return math.nan if value is None or pd.isna(value) else float(value)


def compare_values(expected: Any, found: Any, rel_tol: float = RELATIVE_TOLERANCE) -> bool:
    """Whether a recomputed value and a training frame's value agree: both missing, or close floats."""
    expected, found = as_float(expected), as_float(found)
    if math.isnan(expected) or math.isnan(found):
        return math.isnan(expected) and math.isnan(found)
    return math.isclose(expected, found, rel_tol=rel_tol, abs_tol=rel_tol)


@dataclass(frozen=True)
class Mismatch:
    """One training value the recompute does not reproduce."""

    view: str
    feature: str
    prediction_time: str
    """The row's prediction time (ISO)."""
    entity: str
    """The row's keys, ``key='value'``."""
    found: float
    """The training frame's value."""
    recomputed: float
    why: str = ""
    """What is wrong beyond the value, when the row cannot be recomputed at all (a snapshot time after the
    prediction time, say)."""

    def sentence(self) -> str:
        return f"row at {self.prediction_time} ({self.entity}): training frame {self.found!r}, " + (
            self.why if self.why else f"recomputed {self.recomputed!r}"
        )


@dataclass(frozen=True)
class RecomputeResult:
    """What the recompute check sampled, compared and found."""

    rows: int
    """Rows in the frame."""
    rows_sampled: int
    seed: int
    compared: Mapping[str, int]
    """View -> values compared (sampled rows times the view's columns in the frame)."""
    mismatches: tuple[Mismatch, ...] = ()
    trusted: Mapping[str, str] = field(default_factory=dict)
    """View -> the use case's reason to trust it: views in the frame without a producer to re-run, not proven by
    this check (:class:`~berg.features.feature_set.TrustedView`)."""

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        """For ``info.json`` and the run's logs."""
        return {
            "rows": self.rows,
            "rows_sampled": self.rows_sampled,
            "seed": self.seed,
            "values_compared": dict(self.compared),
            "mismatches": len(self.mismatches),
            "trusted": dict(self.trusted),
        }

    def by_feature(self) -> dict[tuple[str, str], list[Mismatch]]:
        grouped: dict[tuple[str, str], list[Mismatch]] = {}
        for mismatch in self.mismatches:
            grouped.setdefault((mismatch.view, mismatch.feature), []).append(mismatch)
        return grouped

    def summary(self) -> str:
        head = (
            f"recompute check over {self.rows_sampled} of {self.rows} rows (seed {self.seed}), "
            f"{sum(self.compared.values())} values in {len(self.compared)} view(s): "
        )
        lines = [head + (f"{len(self.mismatches)} mismatch(es)" if self.mismatches else "0 mismatches")]
        for (view, feature), found in self.by_feature().items():
            lines.append(
                f"- view {view!r}, feature {feature!r}: {len(found)} sampled row(s) differ from a recompute from "
                "the data before their prediction time, e.g."
            )
            lines += [f"    {mismatch.sentence()}" for mismatch in found[:_SHOWN]]
        lines += [f"  trusted, not recomputed: view {view!r}: {why}" for view, why in self.trusted.items()]
        return "\n".join(lines)


class RecomputeError(LeakageError):
    """Sampled training values differ from their recompute; ``result`` lists them, ``report`` names the features."""

    def __init__(self, result: RecomputeResult) -> None:
        grouped = result.by_feature()
        findings = tuple(
            LeakageFinding(
                kind="recompute_mismatch",
                subject=feature,
                message=f"view {view!r}, feature {feature!r}: {found[0].sentence()}",
                rows=len(found),
            )
            for (view, feature), found in grouped.items()
        )
        report = LeakageReport(
            rows=result.rows_sampled,
            features_checked=tuple(dict.fromkeys(feature for _, feature in grouped)),
            views_checked=tuple(result.compared),
            findings=findings,
        )
        super().__init__(report)
        self.result = result
        # The report's summary names each feature once; the result's shows the rows behind it.
        self.args = (result.summary(),)


def entity_label(keys: Sequence[str], row: Mapping[str, Any]) -> str:
    """``key='value'`` for each of a row's keys."""
    return ", ".join(f"{key}={row[key]!r}" for key in keys)
