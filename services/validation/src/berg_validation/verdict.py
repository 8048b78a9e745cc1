"""What validation says about one micro-batch: which rows fail which rules, and whether the batch is quarantined.

Both engines (:mod:`berg_validation.suites` with Great Expectations and
:mod:`berg_validation.pandas_rules`) return a :class:`Verdict`, so the service,
the benchmark and the cross-check test treat them alike.

Example::

    verdict = suites.validate(frame, stream.name, now)
    if verdict.quarantined:
        ...  # dead-letter the whole batch, reason: ", ".join(verdict.batch_failures)
    else:
        for row in range(verdict.row_count):
            if reasons := verdict.failures_of(row):
                ...  # dead-letter record `row` with `reasons`
            else:
                ...  # pass record `row` on
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Verdict"]


@dataclass(frozen=True)
class Verdict:
    """The result of validating one micro-batch."""

    kind: str
    """The stream's name."""
    row_count: int
    row_failures: Mapping[int, tuple[str, ...]]
    """Row position to the names of the row-level rules it failed, in catalogue order; passing rows are absent."""
    batch_failures: tuple[str, ...]
    """Names of the batch-level rules the batch failed, in catalogue order; non-empty means quarantine.

    A row-level rule that could not judge rows one by one (a column of the wrong
    dtype, an error inside the engine) also lands here: then no row can be trusted.
    """
    failure_counts: Mapping[str, int]
    """Every rule evaluated, by name: rows that failed it (row-level), or 1 if it failed the whole batch, else 0."""
    batch_checked: bool
    """Whether the batch-level rules ran (the batch had enough rows)."""
    errors: Mapping[str, str] = field(default_factory=dict)
    """Rules the engine could not evaluate, with the engine's message (also in :attr:`batch_failures`)."""

    @property
    def quarantined(self) -> bool:
        """True when the whole batch must be held back."""
        return bool(self.batch_failures)

    @property
    def passed(self) -> bool:
        """True when every row passed and the batch is not quarantined."""
        return not self.row_failures and not self.batch_failures

    def failures_of(self, row: int) -> tuple[str, ...]:
        """The row-level rules row ``row`` failed (empty when it passed them all)."""
        return self.row_failures.get(row, ())

    def passing_rows(self) -> list[int]:
        """Positions of the rows that passed every row-level rule, in order."""
        return [row for row in range(self.row_count) if row not in self.row_failures]
