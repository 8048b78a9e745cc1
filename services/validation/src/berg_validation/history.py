"""The validation history, kept off the data path: Data Docs are best effort.

Validation itself runs in an in-memory GX context, so nothing on disk can stop
it. The history lives in a separate GX file context under the state directory.
A SIGKILL can leave any file of that project half-written (a suite, a result,
``great_expectations.yml``); if the project cannot be opened, it is moved aside
and started afresh, and if a build fails later, the failure is logged and
counted and the batch goes on: a broken report never holds back data.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
from great_expectations.data_context.data_context.file_data_context import FileDataContext
from prometheus_client import CollectorRegistry, Counter

from berg.contracts.rules import ContractRules
from berg.usecase import Stream
from berg_validation.data_docs import DataDocs
from berg_validation.suites import build_suites, create_context

__all__ = ["BestEffortHistory", "open_history"]

log = logging.getLogger(__name__)


class BestEffortHistory:
    """A result sink that hands results to :class:`DataDocs` and never raises."""

    def __init__(self, docs: DataDocs, failures: Counter) -> None:
        self._docs = docs
        self._failures = failures

    @property
    def index_path(self) -> Path:
        return self._docs.index_path

    def add(self, result: ExpectationSuiteValidationResult) -> None:
        try:
            self._docs.add(result)
        except Exception:
            self._failures.inc()
            log.warning("could not record a validation result in Data Docs; validation goes on", exc_info=True)

    def close(self) -> None:
        try:
            self._docs.close()
        except Exception:
            self._failures.inc()
            log.warning("could not build Data Docs at shutdown", exc_info=True)


def _open(project_dir: Path, streams: Sequence[Stream], rules: ContractRules, interval_s: float) -> DataDocs:
    context = create_context(project_dir)
    assert isinstance(context, FileDataContext)
    build_suites(context, streams, rules)  # the site shows the suites too
    return DataDocs(context, min_interval_s=interval_s)


def open_history(
    project_dir: Path,
    streams: Sequence[Stream],
    rules: ContractRules,
    interval_s: float,
    registry: CollectorRegistry,
) -> BestEffortHistory | None:
    """The Data Docs of ``project_dir``; a project that cannot be opened is moved aside and recreated.

    Returns:
        The history, or ``None`` when even a fresh project cannot be created (logged).
    """
    failures = Counter(
        "berg_validation_data_docs_failures",
        "Data Docs operations that failed (validation went on).",
        registry=registry,
    )
    try:
        return BestEffortHistory(_open(project_dir, streams, rules, interval_s), failures)
    except Exception:
        failures.inc()
        aside = project_dir.with_name(f"{project_dir.name}.broken-{int(time.time())}")
        log.warning(
            "GX project %s cannot be opened; moving it to %s and starting afresh", project_dir, aside, exc_info=True
        )
        if project_dir.exists():
            shutil.move(project_dir, aside)
    try:
        return BestEffortHistory(_open(project_dir, streams, rules, interval_s), failures)
    except Exception:
        failures.inc()
        log.exception("Data Docs are off: a fresh GX project in %s could not be created", project_dir)
        return None
