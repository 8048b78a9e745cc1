"""Validation history a person can open: GX validation results kept in a file context, and GX Data Docs built from them.

The service creates the file context under its state directory and hands this
object to :meth:`berg_validation.suites.Suites.validate` as the result sink::

    context = create_context(state_dir / "gx")
    suites = build_suites(context, use_case.streams, rules)
    docs = DataDocs(context, min_interval_s=60)
    verdict = suites.validate(frame, use_case.scored.name, now, sink=docs)
    ...
    docs.close()  # a final build

Results wait in memory and are written, with their pages, at most once every
``min_interval_s`` seconds (the first one at once) and on :meth:`DataDocs.close`.
Rendering a page takes GX tens of milliseconds, so each build keeps at most
``max_results_per_build`` of the results that arrived since the last one: every
failed one first (a quarantined batch, rows that failed), newest first, then
the newest that passed; the others are only counted (:attr:`DataDocs.results_dropped`).
The store keeps the newest ``max_results`` results and their pages, so the history
on disk stays bounded too.

The site's entry page is ``<state dir>/gx/uncommitted/data_docs/local_site/index.html``
(:attr:`DataDocs.index_path`): open it in a browser.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)

if TYPE_CHECKING:
    from great_expectations.data_context.data_context.file_data_context import FileDataContext

__all__ = ["SITE_NAME", "DataDocs"]

SITE_NAME: Final = "local_site"
"""The Data Docs site a file context defines by default."""

_RUN_NAME: Final = "berg-micro-batch"


class DataDocs:
    """Keeps a bounded sample of GX validation results in a file context and its Data Docs site, throttled.

    Implements :class:`berg_validation.suites.ResultSink`. Not thread-safe.
    """

    def __init__(
        self,
        context: FileDataContext,
        *,
        min_interval_s: float = 60.0,
        max_results_per_build: int = 30,
        max_results: int = 500,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Take over ``context``'s validation results (the oldest beyond ``max_results`` go at the next build).

        Args:
            context: a file context, e.g. from ``create_context(state_dir / "gx")``.
            min_interval_s: at least this long between two builds (the final one excepted).
            max_results_per_build: how many of the results that arrived since the last build to keep.
            max_results: how many results the store keeps; older ones are deleted with their pages.
            clock: monotonic seconds, for the throttle.
            now: wall-clock time, stamped on each result.

        Raises:
            ValueError: ``min_interval_s`` is negative, or a maximum is not positive.
        """
        if min_interval_s < 0:
            raise ValueError("min_interval_s must not be negative")
        if max_results_per_build < 1 or max_results < 1:
            raise ValueError("max_results_per_build and max_results must be positive")
        self._context = context
        self._min_interval_s = min_interval_s
        self._max_per_build = max_results_per_build
        self._max_results = max_results
        self._clock = clock
        self._now = now
        self._store = context.validation_results_store
        existing = [key for key in self._store.list_keys() if isinstance(key, ValidationResultIdentifier)]
        self._kept: deque[ValidationResultIdentifier] = deque(sorted(existing, key=_run_time))
        self._waiting: list[ExpectationSuiteValidationResult] = []
        self._last_build: float | None = None
        self._sequence = 0
        self.results_dropped = 0
        """Results that were not kept because more arrived between two builds than a build keeps."""

    @property
    def index_path(self) -> Path:
        """The site's entry page (it exists after the first build)."""
        return Path(self._context.root_directory) / "uncommitted" / "data_docs" / SITE_NAME / "index.html"

    @property
    def results_kept(self) -> int:
        """How many validation results the store holds."""
        return len(self._kept)

    def add(self, result: ExpectationSuiteValidationResult) -> None:
        """Take one suite's result for one micro-batch; build the site if the last build is old enough."""
        stamp = self._now()
        self._sequence += 1
        # What ValidationDefinition.run records, so the pages show when and which run.
        result.meta["run_id"] = RunIdentifier(run_name=f"{_RUN_NAME}-{self._sequence:06d}", run_time=stamp)
        result.meta["validation_time"] = stamp.isoformat()
        self._waiting.append(result)
        if len(self._waiting) > self._max_per_build:
            self._drop_one()
        self.build_if_due()

    def build_if_due(self) -> bool:
        """Build the site unless the last build is younger than ``min_interval_s``; True if it built."""
        if self._last_build is not None and self._clock() - self._last_build < self._min_interval_s:
            return False
        self.build()
        return True

    def build(self) -> Path:
        """Store the waiting results and build the site now: their pages (every page, the first time) and the index."""
        added = [self._store_result(result) for result in self._waiting]
        self._waiting.clear()
        removed = self._prune()
        added = [key for key in added if key not in removed]
        if self._last_build is None:
            # Everything the store holds: the suites, and results of earlier runs.
            self._context.build_data_docs(site_names=[SITE_NAME])
        elif added or removed:
            self._context.build_data_docs(site_names=[SITE_NAME], resource_identifiers=added)
        self._last_build = self._clock()
        return self.index_path

    def close(self) -> None:
        """A final build, so the site shows the results that are still waiting."""
        if self._waiting or self._last_build is None:
            self.build()

    def _drop_one(self) -> None:
        # The oldest result that passed, else the oldest: failures are what a person looks for.
        passed = [index for index, result in enumerate(self._waiting) if result.success]
        del self._waiting[passed[0] if passed else 0]
        self.results_dropped += 1

    def _store_result(self, result: ExpectationSuiteValidationResult) -> ValidationResultIdentifier:
        for expectation_result in result.results:
            # expect_column_quantile_values_to_be_between reports a numpy bool, which the
            # store's JSON encoder refuses.
            expectation_result.success = bool(expectation_result.success)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
            run_id=result.meta["run_id"],
            batch_identifier=result.batch_id or result.suite_name,
        )
        self._store.set(key, result)
        self._kept.append(key)
        return key

    def _prune(self) -> list[ValidationResultIdentifier]:
        removed = []
        while len(self._kept) > self._max_results:
            key = self._kept.popleft()
            self._store.remove_key(key)  # type: ignore[no-untyped-call]  # GX leaves it unannotated
            _remove_page(self.index_path.parent, key)
            removed.append(key)
        return removed


def _run_time(key: ValidationResultIdentifier) -> datetime:
    run_time: datetime = key.run_id.run_time
    return run_time if run_time.tzinfo is not None else run_time.replace(tzinfo=UTC)


def _remove_page(site: Path, key: ValidationResultIdentifier) -> None:
    """Delete the page GX's site builder rendered for one result, and the folders it leaves empty."""
    validations = site / "validations"
    parts = key.to_tuple()  # type: ignore[no-untyped-call]  # GX leaves it unannotated
    page = validations.joinpath(*(str(part) for part in parts)).with_suffix(".html")
    page.unlink(missing_ok=True)
    folder = page.parent
    while folder != validations and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
