"""The GX path itself: suites in the context, results handed to a sink, engine errors, rebuilding a file context."""

from __future__ import annotations

from pathlib import Path

import pytest
from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
from services.validation.tests.helpers import NOW, STREAMS, TransactionFactory, transactions_frame

from berg_fraud.rules import FraudRules
from berg_validation.suites import Suites, build_suites, create_context

pytestmark = pytest.mark.unit


class Collect:
    """A result sink that keeps what it is given."""

    def __init__(self) -> None:
        self.results: list[ExpectationSuiteValidationResult] = []

    def add(self, result: ExpectationSuiteValidationResult) -> None:
        self.results.append(result)


def test_each_contract_has_its_suites_in_the_context(suites: Suites) -> None:
    names = {suite.name for suite in suites.context.suites.all()}
    for kind in ("transactions", "labels"):
        assert {f"{kind}.rows", f"{kind}.batch", f"{kind}.passed_rows"} <= names
        rules = suites.catalogue(kind).rules
        built = [
            expectation.meta["berg_name"]
            for level in ("row", "batch", "passed_rows")
            for expectation in suites.suite(kind, level).expectations
        ]
        assert sorted(built) == sorted(rule.name for rule in rules)


def test_the_sink_gets_gx_results_with_the_failed_rows(suites: Suites, transaction: TransactionFactory) -> None:
    events = [transaction() for _ in range(120)]
    events[7] = transaction(amount=-1.0)
    sink = Collect()
    verdict = suites.validate(transactions_frame(events), "transactions", NOW, sink=sink)
    assert [result.suite_name for result in sink.results] == [
        "transactions.rows",
        "transactions.batch",
        "transactions.passed_rows",
    ]
    rows = sink.results[0]
    failed = [result for result in rows.results if not result.success]
    assert [result.expectation_config.meta["berg_name"] for result in failed] == [
        "expect_column_values_to_be_between(amount)"
    ]
    assert failed[0].result["unexpected_index_list"] == [7]
    assert verdict.row_failures == {7: ("expect_column_values_to_be_between(amount)",)}


def test_a_small_batch_hands_over_only_the_row_level_result(suites: Suites, transaction: TransactionFactory) -> None:
    sink = Collect()
    suites.validate(transactions_frame([transaction()]), "transactions", NOW, sink=sink)
    assert [result.suite_name for result in sink.results] == ["transactions.rows"]


def test_an_expectation_gx_cannot_evaluate_quarantines_the_batch(
    suites: Suites, transaction: TransactionFactory
) -> None:
    frame = transactions_frame([transaction() for _ in range(3)])
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[0, "amount"] = "twelve"  # GX's between cannot compare a str with numbers
    verdict = suites.validate(frame, "transactions", NOW)
    assert "expect_column_values_to_be_between(amount)" in verdict.errors
    assert "expect_column_values_to_be_between(amount)" in verdict.batch_failures
    assert verdict.quarantined


def test_the_frame_must_be_positional(suites: Suites, transaction: TransactionFactory) -> None:
    frame = transactions_frame([transaction() for _ in range(3)]).iloc[[2, 0, 1]]
    with pytest.raises(ValueError, match="RangeIndex"):
        suites.validate(frame, "transactions", NOW)


def test_a_file_context_rebuilds_its_suites_from_code(tmp_path: Path, transaction: TransactionFactory) -> None:
    first = build_suites(create_context(tmp_path / "gx"), STREAMS, FraudRules())
    assert (tmp_path / "gx" / "great_expectations.yml").is_file()
    frame = transactions_frame([transaction(currency="SEK")])
    assert first.validate(frame, "transactions", NOW).passed
    # A restart with other settings replaces the stored suites.
    again = build_suites(create_context(tmp_path / "gx"), STREAMS, FraudRules(currencies=frozenset({"EUR"})))
    assert again.validate(frame, "transactions", NOW).row_failures == {
        0: ("expect_column_values_to_be_in_set(currency)",)
    }
