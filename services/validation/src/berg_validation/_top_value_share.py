"""A Great Expectations expectation GX lacks: the share of a column's most common value.

``expect_column_top_value_share_to_be_between(user_id, max_value=0.5)`` fails a
batch where one user accounts for more than half of the non-null values: a
replay loop or a stuck producer, not customers. It reuses GX's own
``column.value_counts`` metric and bound check, so only the share is new.

Defining the class registers it with GX (GX's registry is keyed by the class
name in snake case); importing this module does nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from great_expectations.expectations.expectation import ColumnAggregateExpectation

if TYPE_CHECKING:
    from great_expectations.execution_engine.execution_engine import ExecutionEngine

__all__ = ["ExpectColumnTopValueShareToBeBetween"]

_SHARE = "berg.top_value_share"


class ExpectColumnTopValueShareToBeBetween(ColumnAggregateExpectation):
    """Expect the most common non-null value of a column to make up a share of its non-null values within bounds.

    An empty column (no non-null value) has no top value and fails, like GX's
    ``expect_column_mean_to_be_between`` on an empty column.
    """

    min_value: float | None = None
    max_value: float | None = None

    metric_dependencies = ("column.value_counts",)
    success_keys = ("min_value", "max_value")
    args_keys = ("column", "min_value", "max_value")
    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "experimental",
        "tags": ["berg", "column aggregate expectation"],
        "contributors": ["berg"],
    }

    def _validate(
        self,
        metrics: dict[str, Any],
        runtime_configuration: dict[str, Any] | None = None,
        execution_engine: ExecutionEngine[Any] | None = None,
    ) -> dict[str, Any]:
        counts = metrics["column.value_counts"]
        total = int(counts.sum())
        share = float(counts.max()) / total if total else None
        result: dict[str, Any] = self._validate_metric_value_between(
            metric_name=_SHARE,
            metrics={_SHARE: share},
            runtime_configuration=runtime_configuration,
            execution_engine=execution_engine,
        )
        return result
