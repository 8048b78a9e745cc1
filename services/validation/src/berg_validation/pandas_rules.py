"""The rules of :mod:`berg_validation.catalogue`, evaluated with vectorised pandas.

The benchmark's baseline and the cross-check of the Great Expectations path: for
the same frame, ``now`` and settings, :func:`validate` returns the same
:class:`~berg_validation.verdict.Verdict` as :meth:`berg_validation.suites.Suites.validate`.
It follows GX's semantics where they matter: null values are left to the
not-null rule (every other row-level rule skips them), uniqueness flags every
copy of a duplicated value, ``mostly`` compares the share of non-null values,
quantiles use ``interpolation="nearest"`` and GX's relative tolerance, a type
rule checks each value of an ``object`` column but only the dtype of any other.

The service validates with GX; this module is not on its path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from berg.contracts.rules import ContractRules
from berg.usecase import Stream
from berg_validation.catalogue import MAX_EVENT_TIME, MIN_PASSED_ROWS, Catalogue, Rule, build_catalogue
from berg_validation.verdict import Verdict

__all__ = ["PandasRules", "validate"]

# What a type name of frames.column_types accepts: per value (object columns)
# and per dtype (every other column).
_VALUE_TYPES: Mapping[str, tuple[type, ...]] = {
    "str": (str,),
    "float64": (np.float64,),
    "int64": (np.int64,),
    "bool": (np.bool_, bool),
    "Timestamp": (pd.Timestamp,),
}
_DTYPE_TYPES: Mapping[str, tuple[type, ...]] = {
    "str": (np.str_, str),
    "float64": (np.float64,),
    "int64": (np.int64,),
    "bool": (np.bool_, bool),
    "Timestamp": (pd.Timestamp,),
}

# A row-level rule gives the positions of its failing rows, or None when it fails the batch as a whole.
_RowCheck = Callable[[pd.Series, Mapping[str, Any]], "np.ndarray | None"]
_BatchCheck = Callable[[pd.Series, Mapping[str, Any]], bool]


def _failing(mask: pd.Series) -> np.ndarray:
    return np.flatnonzero(mask.to_numpy(dtype=bool, na_value=False))


def _not_null(column: pd.Series, _: Mapping[str, Any]) -> np.ndarray | None:
    return _failing(column.isna())


def _of_type(column: pd.Series, kwargs: Mapping[str, Any]) -> np.ndarray | None:
    type_name = kwargs["type_"]
    if column.dtype == object:
        if type_name == "str" and pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
            return np.empty(0, dtype=np.intp)  # every non-null value is a str: no need to look one by one
        accepted = _VALUE_TYPES[type_name]
        return _failing(column.notna() & ~column.map(lambda value: isinstance(value, accepted)))
    return None if column.dtype.type not in _DTYPE_TYPES[type_name] else np.empty(0, dtype=np.intp)


def _between_mask(column: pd.Series, kwargs: Mapping[str, Any]) -> pd.Series:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    inside = pd.Series(True, index=column.index)
    if low is not None:
        inside &= column > low if kwargs.get("strict_min") else column >= low
    if high is not None:
        inside &= column < high if kwargs.get("strict_max") else column <= high
    return inside


def _between(column: pd.Series, kwargs: Mapping[str, Any]) -> np.ndarray | None:
    return _failing(column.notna() & ~_between_mask(column, kwargs))


def _in_set(column: pd.Series, kwargs: Mapping[str, Any]) -> np.ndarray | None:
    return _failing(column.notna() & ~column.isin(kwargs["value_set"]))


def _unique_non_null(column: pd.Series, _: Mapping[str, Any]) -> np.ndarray | None:
    # Nulls are not values: two nulls are not duplicates of each other.
    present = column.dropna()
    duplicated = present.duplicated(keep=False)
    return np.sort(column.index.get_indexer(present.index[duplicated.to_numpy()]))


_ROW_CHECKS: Mapping[str, _RowCheck] = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_of_type": _of_type,
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_be_unique": _unique_non_null,
}


def _value_between(value: Any, kwargs: Mapping[str, Any]) -> bool:
    # GX: a missing statistic fails; bounds are inclusive unless strict.
    if value is None or pd.isna(value):
        return False
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    above = low is None or (value > low if kwargs.get("strict_min") else value >= low)
    below = high is None or (value < high if kwargs.get("strict_max") else value <= high)
    return bool(above and below)


def _mean(column: pd.Series, kwargs: Mapping[str, Any]) -> bool:
    return _value_between(column.mean() if len(column) else None, kwargs)


def _median(column: pd.Series, kwargs: Mapping[str, Any]) -> bool:
    present = column.dropna()
    return _value_between(present.median() if len(present) else None, kwargs)


def _close(value: float, bound: float) -> bool:
    return bool(np.isclose(value, bound, rtol=1e-4, atol=1e-8))


def _quantiles(column: pd.Series, kwargs: Mapping[str, Any]) -> bool:
    ranges = kwargs["quantile_ranges"]
    values = column.quantile(ranges["quantiles"], interpolation="nearest").tolist()
    for value, (low, high) in zip(values, ranges["value_ranges"], strict=True):
        if value is None or math.isnan(value):
            return False
        low_f = -math.inf if low is None else low
        high_f = math.inf if high is None else high
        if not (_close(value, low_f) or _close(value, high_f) or low_f <= value <= high_f):
            return False
    return True


def _mostly_in_set(column: pd.Series, kwargs: Mapping[str, Any]) -> bool:
    present = column.dropna()
    if len(present) == 0:
        return True  # GX: vacuously true
    inside = int(present.isin(kwargs["value_set"]).sum())
    return bool(inside / len(present) >= kwargs.get("mostly", 1.0))


def _non_null_share(column: pd.Series, kwargs: Mapping[str, Any]) -> bool:
    share = float(column.notna().sum()) / len(column) if len(column) else 0.0
    return _value_between(share, kwargs)


def _top_share(column: pd.Series, kwargs: Mapping[str, Any]) -> bool:
    counts = column.value_counts()
    total = int(counts.sum())
    return _value_between(float(counts.max()) / total if total else None, kwargs)


def _row_count(rows: pd.Series, kwargs: Mapping[str, Any]) -> bool:
    return _value_between(len(rows), kwargs)


_BATCH_CHECKS: Mapping[str, _BatchCheck] = {
    "expect_table_row_count_to_be_between": _row_count,
    "expect_column_mean_to_be_between": _mean,
    "expect_column_median_to_be_between": _median,
    "expect_column_quantile_values_to_be_between": _quantiles,
    "expect_column_values_to_be_in_set": _mostly_in_set,
    "expect_column_proportion_of_non_null_values_to_be_between": _non_null_share,
    "expect_column_top_value_share_to_be_between": _top_share,
}


def _resolve(kwargs: Mapping[str, Any], parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: parameters[value["$PARAMETER"]] if isinstance(value, Mapping) and "$PARAMETER" in value else value
        for key, value in kwargs.items()
    }


class PandasRules:
    """The catalogues of a use case's streams under one set of settings, evaluated with pandas."""

    def __init__(self, streams: Sequence[Stream], settings: ContractRules) -> None:
        self._settings = settings
        self._catalogues: dict[str, Catalogue] = {stream.name: build_catalogue(stream, settings) for stream in streams}

    def validate(self, frame: pd.DataFrame, kind: str, now: datetime) -> Verdict:
        """Validate one micro-batch; the same contract as :meth:`berg_validation.suites.Suites.validate`."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        catalogue = self._catalogues[kind]
        if list(frame.columns) != list(catalogue.column_types):
            raise ValueError(f"a {kind} frame has columns {list(catalogue.column_types)}, not {list(frame.columns)}")
        rows = len(frame)
        if rows == 0:
            return Verdict(kind, 0, {}, (), dict.fromkeys((rule.name for rule in catalogue.at("row")), 0), False)
        parameters = {
            MAX_EVENT_TIME: pd.Timestamp(self._settings.latest_event_time(now)).tz_convert("UTC"),
            MIN_PASSED_ROWS: catalogue.min_passed_rows(rows),
        }
        counts: dict[str, int] = {}
        failures: dict[int, list[str]] = {}
        batch_failures: list[str] = []
        for rule in catalogue.at("row"):
            positions = self._row_check(rule, frame, parameters)
            if positions is None:
                batch_failures.append(rule.name)
                counts[rule.name] = 1
                continue
            counts[rule.name] = len(positions)
            for position in positions.tolist():
                failures.setdefault(position, []).append(rule.name)
        batch_checked = rows >= catalogue.min_rows_for_batch_rules
        if batch_checked:
            passed = np.ones(rows, dtype=bool)
            passed[list(failures)] = False
            passed_frame = frame[passed]
            for rule in catalogue.at("batch") + catalogue.at("passed_rows"):
                subject = frame if rule.level == "batch" else passed_frame
                data = subject.index.to_series() if rule.column is None else subject[rule.column]
                ok = _BATCH_CHECKS[rule.expectation_type](data, _resolve(rule.kwargs, parameters))
                counts[rule.name] = 0 if ok else 1
                if not ok:
                    batch_failures.append(rule.name)
        return Verdict(
            kind=kind,
            row_count=rows,
            row_failures={row: tuple(names) for row, names in sorted(failures.items())},
            batch_failures=tuple(batch_failures),
            failure_counts=counts,
            batch_checked=batch_checked,
        )

    @staticmethod
    def _row_check(rule: Rule, frame: pd.DataFrame, parameters: Mapping[str, Any]) -> np.ndarray | None:
        assert rule.column is not None, "row-level rules judge a column"
        return _ROW_CHECKS[rule.expectation_type](frame[rule.column], _resolve(rule.kwargs, parameters))


def validate(frame: pd.DataFrame, stream: Stream, now: datetime, settings: ContractRules) -> Verdict:
    """One-off :meth:`PandasRules.validate` (builds the catalogue each call; keep a :class:`PandasRules` instead)."""
    return PandasRules([stream], settings).validate(frame, stream.name, now)
