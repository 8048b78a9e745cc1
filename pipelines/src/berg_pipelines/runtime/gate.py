"""Step 6, gate: promote only a challenger that beats the baseline and the champion by the card's margins."""

from __future__ import annotations

import math
from dataclasses import dataclass

from berg.problem.card import PromotionRule
from berg_pipelines.runtime.evaluate import EvaluationReport

__all__ = ["Decision", "decide"]


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: tuple[str, ...]
    """Why (not): one sentence per rule, passed or failed."""

    @property
    def summary(self) -> str:
        verdict = "promote" if self.promote else "do not promote"
        return f"{verdict}: " + "; ".join(self.reasons)


LOWER_IS_BETTER = frozenset({"expected_cost", "expected_cost_per_event"})


def _lift(metric: str, challenger: float, other: float) -> float:
    """How much better the challenger is; positive is better, whichever way the metric points."""
    if not math.isfinite(other):
        return math.inf
    return other - challenger if metric in LOWER_IS_BETTER else challenger - other


def decide(rule: PromotionRule, report: EvaluationReport) -> Decision:
    """Apply the card's promotion rule to an evaluation. Pure.

    A lift is how much better the challenger is: higher PR-AUC, or lower cost when the
    card's metric is a cost.
    """
    metric = rule.metric
    challenger = report.challenger.metric(metric)
    reasons: list[str] = []
    ok = True
    if not math.isfinite(challenger):
        return Decision(False, (f"the challenger's {metric} cannot be computed on the test window",))
    baseline = report.baseline.metric(metric)
    lift = _lift(metric, challenger, baseline)
    if lift >= rule.min_lift_over_baseline:
        reasons.append(f"{metric} {challenger:.4f} beats the baseline's {baseline:.4f} by {lift:+.4f}")
    else:
        ok = False
        reasons.append(
            f"{metric} {challenger:.4f} is not at least {rule.min_lift_over_baseline:.4f} better than "
            f"the baseline's {baseline:.4f} (lift {lift:+.4f})"
        )
    champion = report.champion
    if champion is None:
        reasons.append("no production champion yet")
    else:
        held = champion.metric(metric)
        lift = _lift(metric, challenger, held)
        if lift >= rule.min_lift_over_champion:
            reasons.append(f"{metric} beats champion {report.champion_version} ({held:.4f}) by {lift:+.4f}")
        else:
            ok = False
            reasons.append(
                f"{metric} {challenger:.4f} is not at least {rule.min_lift_over_champion:.4f} better than "
                f"champion {report.champion_version}'s {held:.4f} (lift {lift:+.4f})"
            )
        if rule.require_lower_cost_than_champion:
            if report.challenger.expected_cost <= champion.expected_cost:
                reasons.append(
                    f"expected cost {report.challenger.expected_cost:,.2f} <= champion's {champion.expected_cost:,.2f}"
                )
            else:
                ok = False
                reasons.append(
                    f"expected cost {report.challenger.expected_cost:,.2f} is higher than the champion's "
                    f"{champion.expected_cost:,.2f}"
                )
    return Decision(ok, tuple(reasons))
