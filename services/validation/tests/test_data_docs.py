"""Data Docs: results kept in a file context, an index.html a person can open, built at most once per interval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from services.validation.tests.helpers import (
    NOW,
    STREAMS,
    LabelFactory,
    TransactionFactory,
    labels_frame,
    transactions_frame,
)

from berg_fraud.rules import FraudRules
from berg_validation.data_docs import DataDocs
from berg_validation.suites import Suites, build_suites, create_context

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def file_suites(tmp_path: Path) -> Suites:
    return build_suites(create_context(tmp_path / "gx"), STREAMS, FraudRules())


def docs_for(suites: Suites, clock: Clock, **options: Any) -> DataDocs:
    return DataDocs(suites.context, clock=clock, **options)


def test_validations_produce_an_index_html(
    file_suites: Suites, tmp_path: Path, transaction: TransactionFactory, label: LabelFactory
) -> None:
    docs = docs_for(file_suites, Clock())
    events = [transaction() for _ in range(120)]
    events[5] = transaction(amount=-2.0)
    file_suites.validate(transactions_frame(events), "transactions", NOW, sink=docs)
    file_suites.validate(labels_frame([label()]), "labels", NOW, sink=docs)
    docs.close()

    assert docs.index_path == tmp_path / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    index = docs.index_path.read_text()
    for suite in ("transactions.rows", "transactions.batch", "transactions.passed_rows", "labels.rows"):
        assert suite in index
    pages = list((docs.index_path.parent / "validations").rglob("*.html"))
    assert len(pages) == 4
    rows_page = next(page for page in pages if "transactions/rows" in page.as_posix()).read_text()
    assert "Unsuccessful Expectations" in rows_page
    assert "amount" in rows_page


def test_builds_are_throttled_and_close_builds_once_more(file_suites: Suites, transaction: TransactionFactory) -> None:
    clock = Clock()
    docs = docs_for(file_suites, clock, min_interval_s=60.0)
    frame = transactions_frame([transaction()])

    file_suites.validate(frame, "transactions", NOW, sink=docs)  # the first result builds at once
    assert docs.index_path.is_file()
    built = docs.index_path.stat().st_mtime_ns
    listed = docs.index_path.read_text().count("transactions.rows")

    clock.now += 30
    file_suites.validate(frame, "transactions", NOW, sink=docs)
    assert docs.index_path.stat().st_mtime_ns == built  # too soon

    clock.now += 31
    file_suites.validate(frame, "transactions", NOW, sink=docs)
    assert docs.index_path.read_text().count("transactions.rows") > listed

    clock.now += 1
    file_suites.validate(frame, "transactions", NOW, sink=docs)
    before_close = docs.index_path.read_text()
    docs.close()
    assert docs.index_path.read_text() != before_close
    assert docs.results_kept == 4


def test_only_the_newest_results_are_kept(file_suites: Suites, transaction: TransactionFactory) -> None:
    docs = docs_for(file_suites, Clock(), min_interval_s=0.0, max_results=2)
    for _ in range(4):
        file_suites.validate(transactions_frame([transaction()]), "transactions", NOW, sink=docs)
    docs.close()
    assert docs.results_kept == 2
    assert len(file_suites.context.validation_results_store.list_keys()) == 2
    assert len(list((docs.index_path.parent / "validations").rglob("*.html"))) == 2


def test_a_restart_keeps_the_history(tmp_path: Path, transaction: TransactionFactory) -> None:
    first = build_suites(create_context(tmp_path / "gx"), STREAMS, FraudRules())
    docs = docs_for(first, Clock())
    first.validate(transactions_frame([transaction()]), "transactions", NOW, sink=docs)
    docs.close()

    again = build_suites(create_context(tmp_path / "gx"), STREAMS, FraudRules())
    assert docs_for(again, Clock()).results_kept == 1


def test_a_build_keeps_the_failed_results_first_and_counts_the_rest(
    file_suites: Suites, transaction: TransactionFactory
) -> None:
    clock = Clock()
    docs = docs_for(file_suites, clock, min_interval_s=60.0, max_results_per_build=2)
    docs.build()
    failing = transactions_frame([transaction(amount=-1.0)])
    for frame in (
        transactions_frame([transaction()]),
        failing,
        *(transactions_frame([transaction()]) for _ in range(3)),
    ):
        file_suites.validate(frame, "transactions", NOW, sink=docs)
    docs.close()
    assert docs.results_kept == 2
    assert docs.results_dropped == 3
    store = file_suites.context.validation_results_store
    stored = [store.get(key) for key in store.list_keys()]
    assert sorted(result.success for result in stored) == [False, True]
