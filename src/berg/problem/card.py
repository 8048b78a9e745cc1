"""The problem card: target, unit of prediction, costs, metric, threshold policy, baseline, promotion margins.

Loaded once at start-up and passed down; the YAML a use case ships is the versioned
source of truth (each use case ships its own ``card_v<n>.yaml``), this model
its validated form.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "RENAMED_METRICS",
    "BaselineSpec",
    "Costs",
    "ProblemCard",
    "PromotionRule",
    "Target",
    "ThresholdPolicy",
    "load_problem_card",
    "parse_problem_card",
]

_FROZEN = ConfigDict(extra="forbid", frozen=True)

RENAMED_METRICS: Mapping[str, str] = MappingProxyType({"expected_cost_per_transaction": "expected_cost_per_event"})
"""Old metric name -> its name now. A card naming an old one still loads, with a ``FutureWarning``."""


def _current_metric_name(value: object) -> object:
    if isinstance(value, str) and value in RENAMED_METRICS:
        warnings.warn(
            f"the problem card names the metric {value!r}, now called {RENAMED_METRICS[value]!r}: "
            "read as the new name; rename it in the card",
            FutureWarning,
            stacklevel=2,
        )
        return RENAMED_METRICS[value]
    return value


MetricName = Annotated[
    Literal["pr_auc", "roc_auc", "precision", "recall", "expected_cost", "expected_cost_per_event"],
    BeforeValidator(_current_metric_name),
]


class Target(BaseModel):
    model_config = _FROZEN

    column: str = Field(min_length=1)
    definition: str = Field(min_length=1)
    label_horizon_days: int = Field(ge=1, le=365)


class Costs(BaseModel):
    """What each outcome costs, in ``currency``. A false negative costs a fixed fee plus a share of the amount."""

    model_config = _FROZEN

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    false_positive: float = Field(ge=0)
    false_negative_fixed: float = Field(ge=0)
    false_negative_amount_share: float = Field(ge=0, le=10)
    true_positive: float = Field(default=0.0, ge=0)


class ThresholdPolicy(BaseModel):
    model_config = _FROZEN

    policy: Literal["min_expected_cost", "fixed"]
    min_precision: float = Field(default=0.0, ge=0, le=1)
    fixed: float | None = Field(default=None, ge=0, le=1)


class BaselineSpec(BaseModel):
    model_config = _FROZEN

    kind: Literal["prior", "logistic_regression"]
    features: tuple[str, ...] = ()


class PromotionRule(BaseModel):
    model_config = _FROZEN

    metric: MetricName
    min_lift_over_baseline: float
    min_lift_over_champion: float
    require_lower_cost_than_champion: bool = True


class MetricsSpec(BaseModel):
    model_config = _FROZEN

    primary: MetricName
    reported: tuple[MetricName, ...]


class ProblemCard(BaseModel):
    """The use case, as the gate, the evaluation and monitoring read it."""

    model_config = _FROZEN

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: int = Field(ge=1)
    summary: str
    prediction_unit: str
    target: Target
    costs: Costs
    metrics: MetricsSpec
    threshold: ThresholdPolicy
    baseline: BaselineSpec
    promotion: PromotionRule

    @property
    def ref(self) -> str:
        """``<name>@v<version>``: how reports and lineage name the card."""
        return f"{self.name}@v{self.version}"


def parse_problem_card(text: str) -> ProblemCard:
    """The card in YAML ``text``.

    Raises:
        pydantic.ValidationError: the card is malformed (the message names the field).
    """
    return ProblemCard.model_validate(yaml.safe_load(text))


def load_problem_card(path: Path) -> ProblemCard:
    """The card in the YAML file at ``path`` (a use case ships its own; see :mod:`berg.usecase`).

    Raises:
        pydantic.ValidationError: the card is malformed (the message names the field).
    """
    return parse_problem_card(path.read_text(encoding="utf-8"))
