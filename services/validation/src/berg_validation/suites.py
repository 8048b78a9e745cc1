"""Great Expectations suites of a use case's streams, built once in one context, and the per-batch validation.

Each stream has three suites, built from :mod:`berg_validation.catalogue` (one per
rule level, because each looks at different rows):

- ``<kind>.rows``, the row-level expectations, on the whole micro-batch. A first run
  with ``result_format`` ``BOOLEAN_ONLY`` says which expectations failed; a second run
  of only those, ``COMPLETE``, gives GX's ``unexpected_index_list`` of each (row
  positions, since frames carry a ``RangeIndex``). Both runs share one GX validator,
  so the batch is loaded once.
- ``<kind>.batch``, the null rates, on the whole micro-batch (same validator);
- ``<kind>.passed_rows``, the share of rows that passed and the distribution
  expectations, on the rows that passed the row-level ones.

The last two run only on batches of at least ``min_rows`` rows. The batch's ``now``
reaches the suites as the suite parameter ``max_event_time`` (``now`` plus the
allowed clock skew) and its size as ``min_passed_rows``, so nothing is rebuilt per
batch.

Why so many runs: GX's cost is mostly per expectation (it builds a metric graph and
re-derives each expectation's configuration many times), not per row. Asking only
failed expectations for their row lists, and filtering the passed rows once instead
of through a GX row condition (a ``DataFrame.query`` per metric), roughly halves it.
See ``docs/benchmarks.md``.

Example::

    context = create_context()                 # once; create_context(state_dir / "gx") for Data Docs
    suites = build_suites(context, use_case.streams, settings.rules)
    verdict = suites.validate(frame, use_case.scored.name, now=datetime.now(UTC))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol, overload

import great_expectations as gx
import numpy as np
import pandas as pd
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.core.expectation_suite import ExpectationSuite
from great_expectations.core.expectation_validation_result import (
    ExpectationSuiteValidationResult,
    ExpectationValidationResult,
)
from great_expectations.core.result_format import ResultFormat, ResultFormatUnion
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.core.expect_column_mean_to_be_between import ExpectColumnMeanToBeBetween
from great_expectations.expectations.core.expect_column_median_to_be_between import ExpectColumnMedianToBeBetween
from great_expectations.expectations.core.expect_column_proportion_of_non_null_values_to_be_between import (
    ExpectColumnProportionOfNonNullValuesToBeBetween,
)
from great_expectations.expectations.core.expect_column_quantile_values_to_be_between import (
    ExpectColumnQuantileValuesToBeBetween,
)
from great_expectations.expectations.core.expect_column_values_to_be_between import ExpectColumnValuesToBeBetween
from great_expectations.expectations.core.expect_column_values_to_be_in_set import ExpectColumnValuesToBeInSet
from great_expectations.expectations.core.expect_column_values_to_be_of_type import ExpectColumnValuesToBeOfType
from great_expectations.expectations.core.expect_column_values_to_be_unique import ExpectColumnValuesToBeUnique
from great_expectations.expectations.core.expect_column_values_to_not_be_null import ExpectColumnValuesToNotBeNull
from great_expectations.expectations.core.expect_table_row_count_to_be_between import ExpectTableRowCountToBeBetween
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from great_expectations.validator.v1_validator import Validator

from berg.contracts.rules import ContractRules
from berg.usecase import Stream
from berg_validation._top_value_share import ExpectColumnTopValueShareToBeBetween
from berg_validation.catalogue import MAX_EVENT_TIME, MIN_PASSED_ROWS, Catalogue, Level, Rule, build_catalogue
from berg_validation.verdict import Verdict

if TYPE_CHECKING:
    from great_expectations.data_context.data_context.abstract_data_context import AbstractDataContext
    from great_expectations.data_context.data_context.ephemeral_data_context import EphemeralDataContext
    from great_expectations.data_context.data_context.file_data_context import FileDataContext

__all__ = ["DATASOURCE_NAME", "ResultSink", "Suites", "build_suites", "create_context", "max_event_time"]

DATASOURCE_NAME: Final = "berg_micro_batches"

_EXPECTATION_CLASSES: Final[Mapping[str, type[Expectation]]] = MappingProxyType(
    {
        expectation_class.expectation_type: expectation_class
        for expectation_class in (
            ExpectColumnValuesToNotBeNull,
            ExpectColumnValuesToBeOfType,
            ExpectColumnValuesToBeBetween,
            ExpectColumnValuesToBeInSet,
            ExpectColumnValuesToBeUnique,
            ExpectColumnProportionOfNonNullValuesToBeBetween,
            ExpectTableRowCountToBeBetween,
            ExpectColumnMeanToBeBetween,
            ExpectColumnMedianToBeBetween,
            ExpectColumnQuantileValuesToBeBetween,
            ExpectColumnTopValueShareToBeBetween,
        )
    }
)

# Which row-level expectations failed: the cheapest format (no values, no row lists).
_FIRST_RESULT_FORMAT: Final = ResultFormat.BOOLEAN_ONLY
# The failed ones again: every unexpected row position, and nothing else that costs
# (the values, the partial lists, the pandas query string).
_ROW_RESULT_FORMAT: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "result_format": "COMPLETE",
        "exclude_unexpected_values": True,
        "return_unexpected_index_query": False,
        "partial_unexpected_count": 0,
    }
)
# Batch-level: success and observed values (for Data Docs) suffice.
_BATCH_RESULT_FORMAT: Final = ResultFormat.SUMMARY

_NAME_KEY: Final = "berg_name"
_LEVEL_KEY: Final = "berg_level"


class ResultSink(Protocol):
    """Where :meth:`Suites.validate` hands GX's own results, e.g. :class:`berg_validation.data_docs.DataDocs`."""

    def add(self, result: ExpectationSuiteValidationResult) -> None:
        """Take one suite's result for one micro-batch."""


@overload
def create_context(project_dir: None = None) -> EphemeralDataContext: ...
@overload
def create_context(project_dir: Path) -> FileDataContext: ...
def create_context(project_dir: Path | None = None) -> EphemeralDataContext | FileDataContext:
    """The one GX context of the process: in memory, or a file context rooted at ``project_dir``.

    A file context keeps suites and validation results under ``project_dir`` (it is
    created there when missing; ``great_expectations.yml`` lands directly in it), which
    Data Docs need. Progress bars and analytics are off either way.
    """
    if project_dir is None:
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )
        return gx.get_context(mode="ephemeral", project_config=config)
    context = gx.get_context(mode="file", context_root_dir=project_dir)
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.variables.analytics_enabled = False
    context.variables.save()
    return context


def max_event_time(now: datetime, settings: ContractRules) -> pd.Timestamp:
    """The latest event time a batch validated at ``now`` accepts.

    Raises:
        ValueError: ``now`` is naive.
    """
    return pd.Timestamp(settings.latest_event_time(now)).tz_convert("UTC")


@dataclass(frozen=True)
class _KindSuites:
    catalogue: Catalogue
    batch_definition: BatchDefinition[Any]
    suites: Mapping[Level, ExpectationSuite]
    row_configurations: Mapping[str, ExpectationConfiguration]
    """Row-level expectations by Berg name, to re-run the failed ones."""


class Suites:
    """The suites of a use case's streams in one GX context; :meth:`validate` judges one micro-batch.

    Build it with :func:`build_suites`, once per process. Not thread-safe: one
    validation at a time (GX's execution engine holds the active batch).
    """

    def __init__(self, context: AbstractDataContext, settings: ContractRules, kinds: Mapping[str, _KindSuites]):
        self._context = context
        self._settings = settings
        self._kinds = kinds

    @property
    def context(self) -> AbstractDataContext:
        """The GX context the suites live in."""
        return self._context

    @property
    def settings(self) -> ContractRules:
        """The settings the suites were built from."""
        return self._settings

    @property
    def kinds(self) -> tuple[str, ...]:
        """The streams the suites judge, by name."""
        return tuple(self._kinds)

    def catalogue(self, kind: str) -> Catalogue:
        """The rules behind the suites of ``kind`` (a stream's name)."""
        return self._kinds[kind].catalogue

    def suite(self, kind: str, level: Level) -> ExpectationSuite:
        """The suite of ``kind`` holding the rules of ``level``."""
        return self._kinds[kind].suites[level]

    def validate(self, frame: pd.DataFrame, kind: str, now: datetime, *, sink: ResultSink | None = None) -> Verdict:
        """Validate one micro-batch of ``kind`` (a frame from :mod:`berg_validation.frames`) at time ``now``.

        Args:
            frame: one row per event, on a ``RangeIndex``.
            kind: which stream the rows are from (its name).
            now: the batch's wall-clock time (aware); event times up to ``now`` plus the skew pass.
            sink: receives GX's results, one per suite run (e.g. for Data Docs).

        Raises:
            ValueError: ``now`` is naive, or the frame is not one of ``kind`` on a ``RangeIndex``.
        """
        kind_suites = self._kinds[kind]
        catalogue = kind_suites.catalogue
        _check_frame(frame, catalogue)
        rows = len(frame)
        parameters: dict[str, Any] = {
            MAX_EVENT_TIME: max_event_time(now, self._settings),
            MIN_PASSED_ROWS: catalogue.min_passed_rows(rows),
        }
        if rows == 0:
            return Verdict(kind, 0, {}, (), dict.fromkeys((rule.name for rule in catalogue.at("row")), 0), False)

        results: list[ExpectationSuiteValidationResult] = []
        validator = self._validator(kind_suites, frame, _FIRST_RESULT_FORMAT)
        results.append(self._row_level(kind_suites, validator, parameters))
        tally = _Tally()
        tally.read(results[0].results)
        batch_checked = rows >= catalogue.min_rows_for_batch_rules
        if batch_checked:
            validator.result_format = _BATCH_RESULT_FORMAT
            results.append(validator.validate_expectation_suite(kind_suites.suites["batch"], parameters))
            passed = np.ones(rows, dtype=bool)
            passed[sorted(tally.failed_rows())] = False
            passed_frame = frame.loc[passed, catalogue.passed_rows_columns].reset_index(drop=True)
            results.append(
                self._validator(kind_suites, passed_frame, _BATCH_RESULT_FORMAT).validate_expectation_suite(
                    kind_suites.suites["passed_rows"], parameters
                )
            )
            for result in results[1:]:
                tally.read(result.results)
        if sink is not None:
            for result in results:
                sink.add(result)
        return tally.verdict(catalogue, rows, batch_checked=batch_checked)

    @staticmethod
    def _validator(kind_suites: _KindSuites, frame: pd.DataFrame, result_format: ResultFormatUnion) -> Validator:
        # GX's own validator (what ValidationDefinition.run uses); one per frame, so the
        # frame is loaded (and fingerprinted) once however many suites run on it.
        return Validator(
            batch_definition=kind_suites.batch_definition,
            batch_parameters={"dataframe": frame},
            result_format=result_format,
        )

    @staticmethod
    def _row_level(
        kind_suites: _KindSuites, validator: Validator, parameters: dict[str, Any]
    ) -> ExpectationSuiteValidationResult:
        """Run the row-level suite; re-run the failed expectations for their rows; one merged result."""
        suite = kind_suites.suites["row"]
        validator.result_format = _FIRST_RESULT_FORMAT
        first = validator.validate_expectation_suite(suite, parameters)
        failed = [_name_of(result) for result in first.results if not result.success]
        if not failed:
            return first
        again = ExpectationSuite(name=suite.name, expectations=[kind_suites.row_configurations[n] for n in failed])
        validator.result_format = dict(_ROW_RESULT_FORMAT)
        detailed = {
            _name_of(result): result for result in validator.validate_expectation_suite(again, parameters).results
        }
        first.results = [detailed.get(_name_of(result), result) for result in first.results]
        return first


def build_suites(context: AbstractDataContext, streams: Sequence[Stream], settings: ContractRules) -> Suites:
    """Build (or, in a file context, replace) the data source and the suites of ``streams`` in ``context``."""
    datasource = context.data_sources.add_or_update_pandas(name=DATASOURCE_NAME)
    kinds: dict[str, _KindSuites] = {}
    for stream in streams:
        kind = stream.name
        catalogue = build_catalogue(stream, settings)
        asset = datasource.add_dataframe_asset(name=kind)
        suites: dict[Level, ExpectationSuite] = {
            level: context.suites.add_or_update(
                _suite(f"{kind}.{'rows' if level == 'row' else level}", catalogue.at(level))
            )
            for level in ("row", "batch", "passed_rows")
        }
        kinds[kind] = _KindSuites(
            catalogue=catalogue,
            batch_definition=asset.add_batch_definition_whole_dataframe(f"{kind}_micro_batch"),
            suites=MappingProxyType(suites),
            row_configurations=MappingProxyType(
                {_name_of_config(e.configuration): e.configuration for e in suites["row"].expectations}
            ),
        )
    return Suites(context, settings, kinds)


def _suite(name: str, rules: Sequence[Rule]) -> ExpectationSuite:
    return ExpectationSuite(name=name, expectations=[_expectation(rule) for rule in rules])


def _expectation(rule: Rule) -> Expectation:
    kwargs: dict[str, Any] = dict(rule.kwargs)
    if rule.column is not None:
        kwargs["column"] = rule.column
    expectation_class = _EXPECTATION_CLASSES[rule.expectation_type]
    return expectation_class(meta={_NAME_KEY: rule.name, _LEVEL_KEY: rule.level}, **kwargs)


def _check_frame(frame: pd.DataFrame, catalogue: Catalogue) -> None:
    expected = list(catalogue.column_types)
    if list(frame.columns) != expected:
        raise ValueError(f"a {catalogue.kind} frame has columns {expected}, not {list(frame.columns)}")
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        raise ValueError("the frame must carry a RangeIndex from 0 (row i = event i)")


def _name_of_config(configuration: ExpectationConfiguration | None) -> str:
    meta = configuration.meta if configuration is not None else None
    if not meta or _NAME_KEY not in meta:
        raise AssertionError(f"an expectation without a Berg name: {configuration}")
    return str(meta[_NAME_KEY])


def _name_of(result: ExpectationValidationResult) -> str:
    return _name_of_config(result.expectation_config)


def _level_of(result: ExpectationValidationResult) -> str | None:
    meta = result.expectation_config.meta if result.expectation_config is not None else None
    return None if not meta else str(meta.get(_LEVEL_KEY))


def _raised(info: Mapping[str, Any] | None) -> str | None:
    """The message of an exception GX caught while evaluating an expectation, if any."""
    if not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    # Metric resolution errors come keyed by metric id.
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


class _Tally:
    """Collects GX's per-expectation results into a verdict's parts."""

    def __init__(self) -> None:
        self._rows: dict[int, list[str]] = {}
        self._batch: set[str] = set()
        self._counts: dict[str, int] = {}
        self._errors: dict[str, str] = {}

    def failed_rows(self) -> set[int]:
        return set(self._rows)

    def read(self, results: Sequence[ExpectationValidationResult]) -> None:
        for result in results:
            name = _name_of(result)
            error = _raised(result.exception_info)
            details = result.result or {}
            if error is not None:
                self._errors[name] = error
                self._batch.add(name)
                self._counts[name] = 1
            elif result.success:
                self._counts[name] = 0
            elif _level_of(result) == "row" and "unexpected_index_list" in details:
                positions = {int(position) for position in details["unexpected_index_list"]}
                for position in positions:
                    self._rows.setdefault(position, []).append(name)
                self._counts[name] = len(positions)
            else:
                # A batch-level failure, or a row-level one GX judged on the column as a
                # whole (a dtype mismatch): no row can be singled out.
                self._batch.add(name)
                self._counts[name] = 1

    def verdict(self, catalogue: Catalogue, row_count: int, *, batch_checked: bool) -> Verdict:
        order = {rule.name: index for index, rule in enumerate(catalogue.rules)}
        return Verdict(
            kind=catalogue.kind,
            row_count=row_count,
            row_failures={
                row: tuple(sorted(names, key=order.__getitem__)) for row, names in sorted(self._rows.items())
            },
            batch_failures=tuple(sorted(self._batch, key=order.__getitem__)),
            failure_counts={name: self._counts[name] for name in sorted(self._counts, key=order.__getitem__)},
            batch_checked=batch_checked,
            errors=self._errors,
        )
