"""Step 2, validate_dataset: a Great Expectations suite for the training frame.

A broken dataset fails the run before anything is trained on it: the label is
0/1 and its rate is plausible (the positive class is rare but present), counts are
non-negative, shares and hours in range, amounts positive, and no feature is
mostly missing. Run on every split; the result names each failed expectation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import great_expectations as gx
import pandas as pd
from great_expectations.core.expectation_suite import ExpectationSuite
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.expectations.core.expect_column_mean_to_be_between import ExpectColumnMeanToBeBetween
from great_expectations.expectations.core.expect_column_proportion_of_non_null_values_to_be_between import (
    ExpectColumnProportionOfNonNullValuesToBeBetween,
)
from great_expectations.expectations.core.expect_column_to_exist import ExpectColumnToExist
from great_expectations.expectations.core.expect_column_values_to_be_between import ExpectColumnValuesToBeBetween
from great_expectations.expectations.core.expect_column_values_to_be_in_set import ExpectColumnValuesToBeInSet
from great_expectations.expectations.core.expect_column_values_to_not_be_null import ExpectColumnValuesToNotBeNull
from great_expectations.expectations.core.expect_table_row_count_to_be_between import (
    ExpectTableRowCountToBeBetween,
)
from great_expectations.expectations.expectation import Expectation

__all__ = ["DatasetRules", "DatasetValidationError", "validate_training_frame"]


class DatasetValidationError(RuntimeError):
    """The training frame failed its suite."""


@dataclass(frozen=True)
class DatasetRules:
    min_rows: int = 200
    min_label_rate: float = 0.001
    max_label_rate: float = 0.3
    min_non_null_share: float = 0.5
    """Of each feature; new users have no history, so some nulls are normal."""


def _expectations(
    frame: pd.DataFrame, label: str, amount: str, features: Sequence[str], rules: DatasetRules
) -> list[Expectation]:
    expectations: list[Expectation] = [
        ExpectTableRowCountToBeBetween(min_value=rules.min_rows),
        ExpectColumnValuesToBeInSet(column=label, value_set=[0, 1]),
        ExpectColumnMeanToBeBetween(column=label, min_value=rules.min_label_rate, max_value=rules.max_label_rate),
        ExpectColumnValuesToNotBeNull(column=amount),
        ExpectColumnValuesToBeBetween(column=amount, min_value=0, strict_min=True),
    ]
    for name in features:
        if name not in frame.columns:
            expectations.append(ExpectColumnToExist(column=name))
            continue
        expectations.append(
            ExpectColumnProportionOfNonNullValuesToBeBetween(column=name, min_value=rules.min_non_null_share)
        )
        if "count" in name or name.startswith(("distinct_", "seconds_since")) or "labels_known" in name:
            expectations.append(ExpectColumnValuesToBeBetween(column=name, min_value=0))
        if "share" in name or "rate" in name:
            expectations.append(ExpectColumnValuesToBeBetween(column=name, min_value=0, max_value=1))
        if name == "hour_of_day":
            expectations.append(ExpectColumnValuesToBeBetween(column=name, min_value=0, max_value=23))
    return expectations


def validate_training_frame(
    frames: dict[str, pd.DataFrame], label: str, amount: str, features: Sequence[str], rules: DatasetRules
) -> dict[str, list[str]]:
    """Validate each split; returns split -> failed expectation descriptions (empty when all pass).

    Raises:
        DatasetValidationError: any split failed, naming the split and the expectations.
    """
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("training").add_dataframe_asset("frame")
    batch_definition = asset.add_batch_definition_whole_dataframe("split")
    failures: dict[str, list[str]] = {}
    for split, frame in frames.items():
        suite = ExpectationSuite(
            name=f"training_frame.{split}", expectations=_expectations(frame, label, amount, features, rules)
        )
        # Nullable integer columns (Int64) are compared as floats by GX's pandas engine.
        batch = batch_definition.get_batch(batch_parameters={"dataframe": _plain(frame)})
        result = batch.validate(suite)
        failures[split] = [_describe(r.expectation_config) for r in result.results if not r.success]
    broken = {split: failed for split, failed in failures.items() if failed}
    if broken:
        details = "; ".join(f"{split}: {', '.join(failed)}" for split, failed in broken.items())
        raise DatasetValidationError(f"the training frame failed its suite ({details})")
    return failures


def _describe(config: object) -> str:
    kind = getattr(config, "type", "expectation")
    column = getattr(config, "kwargs", {}).get("column", "table")
    return f"{kind}({column})"


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    converted = frame.copy()
    for column in converted.columns:
        if str(converted[column].dtype) in {"Int64", "Int32", "boolean"}:
            converted[column] = converted[column].astype("float64")
    return converted
