"""Batch-level rules: a broken upstream quarantines the batch; normal traffic with some bad rows does not."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from services.validation.tests.helpers import (
    NOW,
    STREAMS,
    Engine,
    LabelFactory,
    TransactionFactory,
    labels_frame,
    transactions_frame,
)

from berg_fraud.contracts import TransactionV1
from berg_fraud.rules import FraudBatchBounds, FraudRules
from berg_validation.suites import Suites, build_suites, create_context

pytestmark = pytest.mark.unit

MEAN = "expect_column_mean_to_be_between(amount)"
MEDIAN = "expect_column_median_to_be_between(amount)"
QUANTILES = "expect_column_quantile_values_to_be_between(amount)"
PASSED_SHARE = "expect_table_row_count_to_be_between(passed_rows)"
TOP_USER = "expect_column_top_value_share_to_be_between(user_id)"
CNP_MIN = "expect_column_values_to_be_in_set(channel)[card_not_present_min_share]"
CNP_MAX = "expect_column_values_to_be_in_set(channel)[card_not_present_max_share]"


def null_share(column: str) -> str:
    return f"expect_column_proportion_of_non_null_values_to_be_between({column})"


def traffic(transaction: TransactionFactory, rows: int, bad_every: int = 0) -> list[TransactionV1]:
    """Normal traffic; with ``bad_every``, one row in that many breaks one value rule (in turn)."""
    faults = [
        {"amount": -3.0},
        {"merchant_category": "0000"},
        {"currency": "XXX"},
        {"event_time": NOW + timedelta(days=2)},
        {"amount": 5e6},
    ]
    events = []
    for index in range(rows):
        if bad_every and index % bad_every == 0:
            events.append(transaction(**faults[(index // bad_every) % len(faults)]))
        else:
            events.append(transaction())
    return events


def test_normal_traffic_with_ten_percent_bad_rows_is_not_quarantined(
    engine: Engine, transaction: TransactionFactory
) -> None:
    verdict = engine(transactions_frame(traffic(transaction, 400, bad_every=10)), "transactions")
    assert verdict.batch_checked
    assert verdict.batch_failures == ()
    assert len(verdict.row_failures) == 40
    assert all(row % 10 == 0 for row in verdict.row_failures)


def test_a_clean_big_batch_passes_every_batch_rule(engine: Engine, transaction: TransactionFactory) -> None:
    verdict = engine(transactions_frame(traffic(transaction, 150)), "transactions")
    assert verdict.batch_checked
    assert verdict.passed
    for name in (MEAN, MEDIAN, QUANTILES, PASSED_SHARE, TOP_USER, CNP_MIN, CNP_MAX, null_share("amount")):
        assert verdict.failure_counts[name] == 0


def test_every_amount_at_1e5_breaks_the_amount_distribution(engine: Engine, transaction: TransactionFactory) -> None:
    events = [transaction(amount=1e5) for _ in range(150)]
    verdict = engine(transactions_frame(events), "transactions")
    assert verdict.row_failures == {}
    assert verdict.quarantined
    assert {MEAN, MEDIAN, QUANTILES} <= set(verdict.batch_failures)


def test_amounts_in_cents_instead_of_units_break_it_too(engine: Engine, transaction: TransactionFactory) -> None:
    events = [transaction(amount=0.05) for _ in range(150)]
    verdict = engine(transactions_frame(events), "transactions")
    assert {MEAN, MEDIAN} <= set(verdict.batch_failures)


def test_a_column_of_nulls_breaks_its_null_share_and_the_passed_share(
    engine: Engine, transaction: TransactionFactory
) -> None:
    frame = transactions_frame(traffic(transaction, 150))
    frame["merchant_id"] = pd.Series([pd.NA] * len(frame), dtype=frame["merchant_id"].dtype)
    verdict = engine(frame, "transactions")
    # No row passed, so the amount statistics of the passed rows do not exist and fail too.
    assert verdict.batch_failures[:2] == (null_share("merchant_id"), PASSED_SHARE)
    assert len(verdict.row_failures) == 150
    assert verdict.failures_of(0) == ("expect_column_values_to_not_be_null(merchant_id)",)


def test_a_few_nulls_stay_row_failures(engine: Engine, transaction: TransactionFactory) -> None:
    frame = transactions_frame(traffic(transaction, 150))
    frame.loc[[3, 70], "country"] = pd.NA
    verdict = engine(frame, "transactions")
    assert verdict.batch_failures == ()
    assert set(verdict.row_failures) == {3, 70}


def test_a_batch_mostly_of_bad_rows_is_quarantined(engine: Engine, transaction: TransactionFactory) -> None:
    events = [transaction(amount=-1.0) if index % 5 else transaction() for index in range(150)]
    verdict = engine(transactions_frame(events), "transactions")
    assert PASSED_SHARE in verdict.batch_failures
    assert verdict.failure_counts["expect_column_values_to_be_between(amount)"] == 120


def test_one_user_dominating_the_batch_is_quarantined(engine: Engine, transaction: TransactionFactory) -> None:
    events = [transaction(user_id="user-stuck") if index % 4 else transaction() for index in range(200)]
    verdict = engine(transactions_frame(events), "transactions")
    assert verdict.batch_failures == (TOP_USER,)


@pytest.mark.parametrize(("channel", "failure"), [("card_present", CNP_MIN), ("card_not_present", CNP_MAX)])
def test_a_batch_of_one_channel_is_quarantined(
    engine: Engine, transaction: TransactionFactory, channel: str, failure: str
) -> None:
    verdict = engine(transactions_frame([transaction(channel=channel) for _ in range(150)]), "transactions")
    assert verdict.batch_failures == (failure,)


def test_the_distribution_is_judged_on_the_rows_that_passed(engine: Engine, transaction: TransactionFactory) -> None:
    # 40% absurd amounts (row failures) would drag the mean far out; the passed rows are normal.
    events = [transaction(amount=5e6) if index % 5 < 2 else transaction() for index in range(200)]
    verdict = engine(transactions_frame(events), "transactions")
    assert verdict.batch_failures == ()
    assert verdict.failure_counts["expect_column_values_to_be_between(amount)"] == 80


def test_a_small_batch_skips_the_batch_rules(engine: Engine, transaction: TransactionFactory) -> None:
    events = [transaction(amount=1e5) for _ in range(FraudBatchBounds().min_rows - 1)]
    verdict = engine(transactions_frame(events), "transactions")
    assert not verdict.batch_checked
    assert verdict.passed
    assert MEAN not in verdict.failure_counts


def test_labels_have_batch_rules_too(engine: Engine, label: LabelFactory) -> None:
    frame = labels_frame([label() for _ in range(150)])
    assert engine(frame, "labels").passed
    frame["source"] = pd.Series([pd.NA] * len(frame), dtype=frame["source"].dtype)
    verdict = engine(frame, "labels")
    assert verdict.batch_failures == (null_share("source"), PASSED_SHARE)


@pytest.fixture(scope="module")
def strict_suites() -> Suites:
    """Suites with batch rules from 10 rows and at most one user in ten."""
    bounds = FraudBatchBounds(min_rows=10, max_top_user_share=0.1)
    return build_suites(create_context(), STREAMS, FraudRules(batch=bounds))


def test_the_bounds_come_from_the_settings(strict_suites: Suites, transaction: TransactionFactory) -> None:
    events = [transaction(user_id="user-a" if index < 3 else f"user-{index}") for index in range(12)]
    verdict = strict_suites.validate(transactions_frame(events), "transactions", NOW)
    assert verdict.batch_checked
    assert verdict.batch_failures == (TOP_USER,)
