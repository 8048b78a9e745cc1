"""The rollout policy (pure, no I/O): the next step of a challenger on its way to production.

The pipeline registers a challenger that passed the gate without promoting it and
records ``candidate``. :func:`next_step` reads the version's rollout history (see
:mod:`berg.registry.rollout`) with the effective :class:`~berg.problem.card.RolloutSpec`
and answers with one :class:`RolloutStep`; the controller carries it out and asks
again on its next tick, so every step is small, recorded, and safe to repeat:

- a newer candidate ``supersedes`` older unfinished ones;
- ``candidate`` -> ``shadow_started`` when the policy has ``shadow`` (alias ``shadow``
  names it, serving scores it beside the champion);
- in shadow, once it has ``min_predictions`` and ``min_labelled``: ``shadow_passed`` when
  ``min_labelled`` is 0 or its live PR-AUC is at least the champion's minus
  ``max_quality_drop``, else ``shadow_failed``. Only observations of the current champion
  count: a comparison with a retired champion says nothing about the one it would replace;
- ``awaiting_approval`` when the policy has ``approval``; a person approves or rejects;
- ``promote``: production moves to it, with a reason naming the stages it passed.

Example:
    >>> step = next_step(spec, "v0007", history, RolloutContext(production="v0006", shadow_alias=None))
    >>> step.kind
    'start_shadow'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from berg.problem.card import RolloutSpec
from berg.registry.rollout import RolloutAction, RolloutEvent

__all__ = [
    "UNFINISHED_AFTER",
    "RolloutContext",
    "RolloutStep",
    "ShadowObservation",
    "StepKind",
    "is_unfinished",
    "next_step",
    "promotion_reason",
]

StepKind = Literal[
    "wait",
    "supersede",
    "start_shadow",
    "repoint_shadow",
    "shadow_passed",
    "shadow_failed",
    "await_approval",
    "promote",
]

UNFINISHED_AFTER: frozenset[str] = frozenset(
    {"candidate", "shadow_started", "shadow_passed", "awaiting_approval", "approved"}
)
"""Last actions of a version still on its way to production."""


@dataclass(frozen=True)
class ShadowObservation:
    """What monitoring measured of one shadow beside one champion (``berg_monitoring_shadow_*``)."""

    champion_version: str
    shadow_version: str
    predictions: int
    labelled: int
    champion_pr_auc: float | None = None
    """None while the labelled requests do not hold both classes."""
    shadow_pr_auc: float | None = None


@dataclass(frozen=True)
class RolloutContext:
    """The model around the version: its aliases, newer candidates and what monitoring saw."""

    production: str | None
    """The version the ``production`` alias names now."""
    shadow_alias: str | None
    """The version the ``shadow`` alias names now."""
    newer_candidate: str | None = None
    """The newest later version that is itself unfinished, if any (it supersedes this one)."""
    observations: Sequence[ShadowObservation] = ()


@dataclass(frozen=True)
class RolloutStep:
    """What to do next for one version; ``after`` guards the registry write (another controller may be faster)."""

    kind: StepKind
    reason: str = ""
    action: RolloutAction | None = None
    """The rollout event to record, if any."""
    after: frozenset[str | None] = frozenset()
    """The last action the version must still have for the event to be recorded."""
    details: Mapping[str, object] = field(default_factory=dict)
    clear_shadow: bool = False
    """Unset alias ``shadow`` (it names this version)."""


def is_unfinished(history: Sequence[RolloutEvent]) -> bool:
    """Whether the version is still on its way (a candidate, in shadow, waiting or approved)."""
    return bool(history) and history[-1].action in UNFINISHED_AFTER


def _last(history: Sequence[RolloutEvent], action: str) -> RolloutEvent | None:
    return next((event for event in reversed(history) if event.action == action), None)


def _observation(version: str, context: RolloutContext) -> ShadowObservation | None:
    return next(
        (
            seen
            for seen in context.observations
            if seen.shadow_version == version and seen.champion_version == context.production
        ),
        None,
    )


def promotion_reason(history: Sequence[RolloutEvent], policy_name: str) -> str:
    """Why production moves to the version: the stages it passed, with their figures."""
    parts = [f"rollout {policy_name}: passed the offline gate"]
    passed = _last(history, "shadow_passed")
    if passed is not None:
        parts.append(f"shadow ({passed.reason})")
    approved = _last(history, "approved")
    if approved is not None:
        parts.append(f"approved by {approved.actor} ({approved.reason})")
    return "; ".join(parts)


def _after_shadow(spec: RolloutSpec, history: Sequence[RolloutEvent], last: str) -> RolloutStep:
    """The step once the shadow stage is passed (or absent): approval, else promotion."""
    if "approval" in spec.policy:
        return RolloutStep(
            "await_approval",
            "waiting for a person: `berg models approve` or `berg models reject`",
            action="awaiting_approval",
            after=frozenset({last}),
        )
    return _promote(spec, history, last)


def _promote(spec: RolloutSpec, history: Sequence[RolloutEvent], last: str) -> RolloutStep:
    return RolloutStep(
        "promote",
        promotion_reason(history, spec.policy_name),
        action="promoted",
        after=frozenset({last}),
        clear_shadow=True,
    )


def _judge_shadow(spec: RolloutSpec, version: str, context: RolloutContext) -> RolloutStep:
    if context.shadow_alias != version:
        # The event was recorded but the alias move was lost (a crash between the two writes).
        return RolloutStep("repoint_shadow", f"alias shadow should name {version}")
    seen = _observation(version, context)
    rule = spec.shadow
    if seen is None:
        return RolloutStep("wait", f"no shadow observations of {version} beside champion {context.production} yet")
    counts = f"{seen.predictions} shadow predictions, {seen.labelled} labelled"
    if seen.predictions < rule.min_predictions or seen.labelled < rule.min_labelled:
        return RolloutStep(
            "wait", f"{counts}; the stage needs {rule.min_predictions} predictions and {rule.min_labelled} labelled"
        )
    details: dict[str, object] = {
        "champion_version": seen.champion_version,
        "predictions": seen.predictions,
        "labelled": seen.labelled,
    }
    if rule.min_labelled == 0:
        return RolloutStep(
            "shadow_passed",
            f"{counts} beside champion {seen.champion_version}; no labels required",
            action="shadow_passed",
            after=frozenset({"shadow_started"}),
            details=details,
        )
    if seen.shadow_pr_auc is None or seen.champion_pr_auc is None:
        return RolloutStep("wait", f"{counts}; PR-AUC needs labelled requests of both classes")
    details |= {
        "shadow_pr_auc": seen.shadow_pr_auc,
        "champion_pr_auc": seen.champion_pr_auc,
        "max_quality_drop": rule.max_quality_drop,
    }
    figures = (
        f"{counts}; PR-AUC {seen.shadow_pr_auc:.4f} vs champion {seen.champion_version} "
        f"{seen.champion_pr_auc:.4f} (allowed drop {rule.max_quality_drop:g})"
    )
    if seen.shadow_pr_auc >= seen.champion_pr_auc - rule.max_quality_drop:
        return RolloutStep(
            "shadow_passed", figures, action="shadow_passed", after=frozenset({"shadow_started"}), details=details
        )
    return RolloutStep(
        "shadow_failed",
        figures,
        action="shadow_failed",
        after=frozenset({"shadow_started"}),
        details=details,
        clear_shadow=True,
    )


def next_step(spec: RolloutSpec, version: str, history: Sequence[RolloutEvent], context: RolloutContext) -> RolloutStep:
    """The next step of ``version`` given its rollout ``history`` (oldest first) and ``context``.

    Args:
        spec: the effective rollout (card and ``BERG_ROLLOUT_*`` overrides).
        version: the version to move.
        history: its rollout events; a version without any is not a candidate and never moves.
        context: aliases, newer candidates and the shadow observations, read now.
    """
    if not is_unfinished(history):
        stage = history[-1].action if history else "not a candidate"
        return RolloutStep("wait", f"{version} is done ({stage})")
    last = history[-1].action
    if context.newer_candidate is not None:
        return RolloutStep(
            "supersede",
            f"superseded by the newer candidate {context.newer_candidate}",
            action="superseded",
            after=frozenset({last}),
            details={"superseded_by": context.newer_candidate},
            clear_shadow=context.shadow_alias == version,
        )
    if last == "candidate":
        if "shadow" in spec.policy:
            if context.production is None:
                # Nothing to score beside: the first model of a name goes on without the shadow stage.
                return _after_shadow(spec, history, last)
            return RolloutStep(
                "start_shadow",
                f"scores live requests beside champion {context.production} "
                f"(share {spec.shadow.share:g}, needs {spec.shadow.min_predictions} predictions, "
                f"{spec.shadow.min_labelled} labelled)",
                action="shadow_started",
                after=frozenset({"candidate"}),
            )
        return _after_shadow(spec, history, last)
    if last == "shadow_started":
        return _judge_shadow(spec, version, context)
    if last == "shadow_passed":
        return _after_shadow(spec, history, last)
    if last == "awaiting_approval":
        return RolloutStep("wait", "waiting for a person's approval")
    return _promote(spec, history, last)
