"""The problem card: target, unit of prediction, costs, metric, threshold policy, baseline, promotion margins.

Loaded once at start-up and passed down; the YAML a use case ships is the versioned
source of truth (each use case ships its own ``card_v<n>.yaml``), this model
its validated form.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

__all__ = [
    "RENAMED_METRICS",
    "BaselineSpec",
    "Costs",
    "ProblemCard",
    "PromotionRule",
    "RolloutSpec",
    "RolloutStage",
    "ShadowRule",
    "Target",
    "ThresholdPolicy",
    "WatchRule",
    "load_problem_card",
    "parse_policy",
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


RolloutStage = Literal["shadow", "approval"]
"""A stage a challenger that passed the gate goes through before production, in the order a policy names them."""

_STAGE_ORDER: tuple[RolloutStage, ...] = ("shadow", "approval")


class ShadowRule(BaseModel):
    """The ``shadow`` stage: the challenger scores live requests beside the champion, off the response's path."""

    model_config = _FROZEN

    share: float = Field(default=1.0, gt=0, le=1)
    """Share of live requests the shadow also scores (sampled per request)."""
    min_predictions: int = Field(default=1000, ge=1)
    """Shadow predictions needed before the stage can pass."""
    min_labelled: int = Field(default=100, ge=0)
    """Of those, how many must have a resolved label (0: promote on agreement alone)."""
    max_quality_drop: float = Field(default=0.0, ge=0, le=1)
    """How much lower the shadow's live PR-AUC may be than the champion's on the same labelled requests."""


class WatchRule(BaseModel):
    """After a promotion: how long the controller watches the new version, and what makes it roll back."""

    model_config = _FROZEN

    window_minutes: float = Field(default=60.0, ge=0, le=7 * 24 * 60)
    """How long after a promotion a breach rolls back (0: no watch)."""
    max_prediction_psi: float = Field(default=0.25, gt=0)
    """PSI of the new version's live scores against its own test-window scores above which it rolls back."""
    max_quality_drop: float = Field(default=0.1, ge=0, le=1)
    """Live PR-AUC below the version's evaluation by more than this (once monitoring has enough labels)."""


class RolloutSpec(BaseModel):
    """How a challenger that passed the offline gate reaches production, and how it is watched after."""

    model_config = _FROZEN

    policy: tuple[RolloutStage, ...] = ()
    """The stages after the gate, in order; empty is ``offline``: the gate promotes."""
    shadow: ShadowRule = ShadowRule()
    watch: WatchRule = WatchRule()

    @field_validator("policy", mode="before")
    @classmethod
    def _policy_from_text(cls, value: object) -> object:
        return parse_policy(value) if isinstance(value, str) else value

    @field_validator("policy")
    @classmethod
    def _stages_in_order(cls, value: tuple[RolloutStage, ...]) -> tuple[RolloutStage, ...]:
        if len(set(value)) != len(value) or list(value) != sorted(value, key=_STAGE_ORDER.index):
            raise ValueError(f"a policy names each stage once, shadow before approval (got {list(value)})")
        return value

    @property
    def policy_name(self) -> str:
        """``offline``, ``shadow``, ``approval`` or ``shadow+approval``."""
        return "+".join(self.policy) or "offline"


def parse_policy(text: str) -> tuple[str, ...]:
    """``offline`` -> (); ``shadow+approval`` (or ``shadow,approval``) -> ("shadow", "approval")."""
    parts = [part.strip() for part in re.split(r"[+,]", text.strip()) if part.strip()]
    return () if parts in ([], ["offline"]) else tuple(parts)


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
    rollout: RolloutSpec = RolloutSpec()
    """Offline (the gate promotes) unless the card names stages."""

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
