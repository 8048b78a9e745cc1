"""The catalogue: stable, unique names; every column checked for type and nulls; bounds from the settings."""

from __future__ import annotations

import re

import pytest
from services.validation.tests.helpers import STREAM

from berg_fraud.rules import FraudBatchBounds, FraudRules
from berg_validation.catalogue import MIN_PASSED_ROWS, build_catalogue
from berg_validation.frames import column_types

pytestmark = pytest.mark.unit

NAME = re.compile(r"^expect_[a-z_]+\([a-z_]+\)(\[[a-z_]+\])?$")


@pytest.mark.parametrize("kind", tuple(STREAM))
def test_names_are_unique_and_label_friendly(kind: str) -> None:
    catalogue = build_catalogue(STREAM[kind], FraudRules())
    names = [rule.name for rule in catalogue.rules]
    assert len(names) == len(set(names))
    assert all(NAME.match(name) for name in names), names


@pytest.mark.parametrize("kind", tuple(STREAM))
def test_every_column_is_checked_for_nulls_and_type_row_by_row(kind: str) -> None:
    rows = {rule.name for rule in build_catalogue(STREAM[kind], FraudRules()).at("row")}
    for column in column_types(STREAM[kind].contract):
        assert f"expect_column_values_to_not_be_null({column})" in rows
        assert f"expect_column_values_to_be_of_type({column})" in rows


def test_names_do_not_depend_on_the_bounds() -> None:
    loose = build_catalogue(STREAM["transactions"], FraudRules())
    tight = build_catalogue(
        STREAM["transactions"], FraudRules(batch=FraudBatchBounds(amount_mean=(10, 20)), clock_skew_s=1)
    )
    assert [rule.name for rule in loose.rules] == [rule.name for rule in tight.rules]
    assert [rule.kwargs for rule in loose.rules] != [rule.kwargs for rule in tight.rules]


@pytest.mark.parametrize(("rows", "share", "needed"), [(100, 0.5, 50), (101, 0.5, 51), (10, 0.3, 7), (3, 0.0, 3)])
def test_how_many_rows_must_pass(rows: int, share: float, needed: int) -> None:
    catalogue = build_catalogue(STREAM["labels"], FraudRules(batch=FraudBatchBounds(max_failed_row_share=share)))
    assert catalogue.min_passed_rows(rows) == needed
    rule = next(rule for rule in catalogue.rules if rule.expectation_type == "expect_table_row_count_to_be_between")
    assert rule.kwargs == {"min_value": {"$PARAMETER": MIN_PASSED_ROWS}}
