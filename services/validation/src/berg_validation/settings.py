"""Settings of the validation service (``BERG_VALIDATION_*``).

Generic over the use case's rules (:attr:`berg.usecase.UseCase.rules`): the service reads
``BERG_USE_CASE`` first, then ``ValidationSettings[use_case.rules]``, so
``BERG_VALIDATION_RULES__*`` is checked against that use case's parameters at start-up,
e.g. ``BERG_VALIDATION_RULES__CLOCK_SKEW_S=120`` or ``BERG_VALIDATION_RULES__BATCH__MIN_ROWS=500``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Generic, TypeVar

from pydantic import Field

from berg.contracts.rules import ContractRules
from berg.service import ConsumerServiceSettings
from berg.settings import service_config
from berg.web.app import WebSettings

__all__ = ["ValidationSettings"]

RulesT = TypeVar("RulesT", bound=ContractRules)


class ValidationSettings(ConsumerServiceSettings, Generic[RulesT]):
    """What validation reads, how it batches, and its rules."""

    model_config = service_config("BERG_VALIDATION_")

    service_name: str = "validation"
    group_id: str = "berg-validation"
    web: WebSettings = WebSettings(port=8102)
    batch_max_records: int = Field(default=20_000, ge=1, le=100_000)
    """Rows per micro-batch. Great Expectations costs about 150 ms per validation
    whatever the size, so only large batches amortise it (8x pandas at 20,000
    rows, 20x at 2,000; docs/benchmarks.md); ``batch_max_wait_ms`` bounds latency."""
    batch_max_wait_ms: int = Field(default=1_000, ge=1, le=60_000)
    """A micro-batch is validated at the latest this long after its first record."""
    rules: RulesT = Field(default_factory=dict, validate_default=True)
    """The use case's rule parameters (clock skew, its known sets and bounds, the batch bounds)."""
    data_docs_dir: Path | None = Path(".berg/gx")
    """GX project folder for validation results and Data Docs; ``null`` keeps GX in memory."""
    data_docs_interval_s: float = Field(default=60.0, ge=0)
    """Data Docs are rebuilt at most this often (and once at shutdown)."""
