"""Carry out the rollout policy and the watch against the registry, once per tick and model.

:func:`~berg_controller.rollout.next_step` and :func:`~berg_controller.watch.breach`
decide; this module reads what they need (registry, Prometheus) and writes what they
decided. Every rollout event is recorded with the ``after=`` guard, so of two
controllers that decided the same step one records it and the other is refused and
moves on. Each step is followed by its alias move, and an alias move lost to a crash is
made again on a later tick (the policy sees the event without the move).

A rollback is recorded on the version first (``rolled_back``, guarded) and then made
with ``only_from``: once per promotion, however many controllers watch. It starts no
retraining run: it touches no run or trigger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from berg.problem.card import RolloutSpec
from berg.registry import ModelRegistry, RegistryError, RolloutEvent, stage_of
from berg_controller.metrics import ControllerMetrics
from berg_controller.open_rollouts import OpenRollouts
from berg_controller.prometheus import PrometheusUnavailable
from berg_controller.rollout import RolloutContext, RolloutStep, ShadowObservation, next_step
from berg_controller.signals import RolloutSignals
from berg_controller.watch import breach, watched_promotion

__all__ = ["CONTROLLER_ACTOR", "PRODUCTION", "SHADOW", "NotAwaitingApproval", "RolloutDriver", "UnknownVersion"]

log = logging.getLogger(__name__)

CONTROLLER_ACTOR = "berg-controller"
"""Who the controller's rollout events name."""
PRODUCTION = "production"
SHADOW = "shadow"

_READ_ERRORS = (RegistryError, OSError, ValueError)
_MAX_PASSES = 8
"""Passes over a model's rollouts per tick: a version moves as far as it can (shadow passed, then awaiting
approval) without waiting a tick per step, and a bug can never spin."""


class UnknownVersion(Exception):
    """The registry holds no such model version."""


class NotAwaitingApproval(Exception):
    """A review of a version that is not waiting for one."""


class RolloutDriver:
    """Moves each managed model's candidates through the policy and watches fresh promotions.

    Args:
        registry: the model registry (read and written).
        spec: the effective rollout (the card's, with ``BERG_ROLLOUT_*`` applied).
        metrics: the service's metrics.
        signals: live behaviour from Prometheus; None when no Prometheus is configured (the watch is off
            and a shadow stage waits).
        clock: UTC now.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        spec: RolloutSpec,
        metrics: ControllerMetrics,
        signals: RolloutSignals | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._registry = registry
        self._open = OpenRollouts(registry)
        self._spec = spec
        self._metrics = metrics
        self._signals = signals
        self._clock = clock

    @property
    def spec(self) -> RolloutSpec:
        return self._spec

    def close(self) -> None:
        if self._signals is not None:
            self._signals.close()

    def restore_gauges(self, models: Sequence[str]) -> None:
        """Set the last-rollback gauge from production's alias history, so a restart keeps it."""
        for model in models:
            try:
                moves = self._registry.history(model, PRODUCTION)
            except _READ_ERRORS as error:
                log.warning("cannot read the production history of %s: %s", model, error)
                continue
            rollbacks = [move for move in moves if move.action == "rollback"]
            if rollbacks:
                self._metrics.last_rollback.labels(model).set(rollbacks[-1].moved_at.timestamp())

    def tick(self, model: str) -> None:
        """Advance ``model``'s candidates, then watch its latest promotion; a read that fails waits a tick."""
        try:
            self._advance(model)
        except (*_READ_ERRORS, PrometheusUnavailable) as error:
            log.warning("rollout of %s waits for the next tick: %s", model, error, extra={"model": model})
        try:
            self._watch(model)
        except (*_READ_ERRORS, PrometheusUnavailable) as error:
            log.warning("watch of %s waits for the next tick: %s", model, error, extra={"model": model})

    # Reads and reviews for the API (the CLI writes the same registry records directly)

    def unfinished(self, model: str) -> list[tuple[str, list[RolloutEvent]]]:
        """``model``'s versions still on their way to production, each with its history, oldest first."""
        return self._open.unfinished(model)

    def history(self, model: str, version: str) -> list[RolloutEvent]:
        """``version``'s rollout history, oldest first."""
        return self._registry.rollout_history(model, version)

    def pending(self, model: str) -> list[tuple[str, list[RolloutEvent]]]:
        """``model``'s versions waiting for a person's approval."""
        return self._registry.pending_approval(model)

    def review(self, model: str, version: str, *, approve: bool, actor: str, reason: str) -> RolloutEvent:
        """Record a person's approval or rejection; the next tick promotes an approved version.

        Raises:
            UnknownVersion: no such version of ``model``.
            NotAwaitingApproval: the version is not waiting for approval (the message says where it is).
        """
        try:
            self._registry.get(model, version)
        except RegistryError as error:
            raise UnknownVersion(str(error)) from None
        try:
            return self._registry.review(model, version, approve=approve, actor=actor, reason=reason)
        except RegistryError as error:
            raise NotAwaitingApproval(str(error)) from None

    # Rollouts

    def _alias(self, model: str, alias: str) -> str | None:
        move = self._registry.alias(model, alias)
        return None if move is None else move.version

    def _observations(self, model: str, histories: dict[str, list[RolloutEvent]]) -> list[ShadowObservation]:
        in_shadow = any(history[-1].action == "shadow_started" for history in histories.values())
        if not in_shadow or self._signals is None:
            return []
        try:
            return self._signals.shadow_observations(model)
        except PrometheusUnavailable as error:
            # No observations: a shadow stage waits, while approvals and promotions go on.
            log.warning("shadow observations of %s wait for the next tick: %s", model, error, extra={"model": model})
            return []

    def _advance(self, model: str) -> None:
        for _ in range(_MAX_PASSES):
            if not self._advance_once(model):
                break
        self._refresh_rollout_gauges(model)

    def _advance_once(self, model: str) -> bool:
        """One step for each unfinished version; whether any was taken."""
        histories = dict(self.unfinished(model))  # oldest first (rollout_versions sorts by version number)
        newest = next(reversed(histories), None)
        context = RolloutContext(
            production=self._alias(model, PRODUCTION),
            shadow_alias=self._alias(model, SHADOW),
            observations=self._observations(model, histories),
        )
        moved = self._release_finished_shadow(model, context.shadow_alias, histories)
        for version, history in histories.items():
            newer = newest if newest != version else None
            step = next_step(self._spec, version, history, _with_newer(context, newer))
            moved = self._carry_out(model, version, step) or moved
        return moved

    def _release_finished_shadow(
        self, model: str, shadow: str | None, unfinished: dict[str, list[RolloutEvent]]
    ) -> bool:
        """Free alias ``shadow`` when it names a version whose rollout is over (rejected after its shadow stage).

        A version without rollout events is left alone: a person may shadow one by hand.
        """
        if shadow is None or shadow in unfinished:
            return False
        history = self._registry.rollout_history(model, shadow)
        if not history:
            return False
        self._clear_shadow(model, shadow, f"{shadow}: rollout over ({history[-1].action})")
        return True

    def _record(self, model: str, version: str, step: RolloutStep) -> bool:
        """Record the step's event; False when another writer moved the version first (nothing else to do)."""
        assert step.action is not None
        try:
            self._registry.record_rollout(
                model,
                version,
                step.action,
                actor=CONTROLLER_ACTOR,
                reason=step.reason,
                policy=self._spec.policy_name,
                details=step.details,
                after=step.after,
            )
        except RegistryError as error:
            log.info("%s %s was moved by another writer: %s", model, version, error)
            return False
        log.info(
            "rollout %s %s: %s",
            model,
            version,
            step.action,
            extra={"model": model, "version": version, "reason": step.reason},
        )
        return True

    def _clear_shadow(self, model: str, version: str, reason: str) -> None:
        # Only the version's own shadow: a newer candidate may already be scored there.
        if self._alias(model, SHADOW) == version:
            self._registry.clear(model, SHADOW, reason)

    def _carry_out(self, model: str, version: str, step: RolloutStep) -> bool:
        """Take ``step``; whether anything was written (another writer's step counts as nothing)."""
        if step.kind == "wait":
            return False
        if step.kind == "repoint_shadow":
            self._registry.promote(model, version, SHADOW, f"shadow stage of {version}")
            return True
        if step.kind == "promote":
            return self._promote(model, version, step)
        if not self._record(model, version, step):
            return False
        if step.kind == "start_shadow":
            self._registry.promote(model, version, SHADOW, f"shadow stage of {version}: {step.reason}")
        if step.clear_shadow:
            self._clear_shadow(model, version, f"{version}: {step.action}")
        return True

    def _promote(self, model: str, version: str, step: RolloutStep) -> bool:
        # Re-read just before moving production: another controller may have finished (or a person rejected).
        history = self._registry.rollout_history(model, version)
        if not history or history[-1].action not in step.after:
            return False
        # The shadow slot first, so that ``promoted`` in the history means every alias is where it ends (a crash
        # in between leaves the last step as it was, and the next round does it all again).
        self._clear_shadow(model, version, f"{version} promoted")
        self._registry.promote(model, version, PRODUCTION, step.reason)
        recorded = self._record(model, version, step)
        if recorded:
            self._metrics.last_promotion.labels(model).set(self._clock().timestamp())
        return recorded

    def _refresh_rollout_gauges(self, model: str) -> None:
        current = [(version, stage_of(history) or "") for version, history in self.unfinished(model)]
        self._metrics.rollout_stage.set(model, current)
        pending = sum(1 for _, stage in current if stage == "awaiting_approval")
        self._metrics.pending_approvals.labels(model).set(pending)

    # The watch

    def _watch(self, model: str) -> None:
        production = self._registry.alias(model, PRODUCTION)
        if production is not None and production.action == "rollback":
            self._metrics.last_rollback.labels(model).set(production.moved_at.timestamp())
        window = timedelta(minutes=self._spec.watch.window_minutes)
        promotion = watched_promotion(production, window, self._clock())
        if promotion is None or self._signals is None or promotion.previous is None:
            # No promotion under watch; or a model's first version: nothing to go back to, so nothing to weigh.
            return
        version = promotion.version
        history = self._registry.rollout_history(model, version)
        recorded = history[-1] if history and history[-1].action == "rolled_back" else None
        if recorded is not None and recorded.at >= promotion.moved_at:
            # Recorded by us or a peer, but the alias move did not follow (a crash): finish it.
            self._roll_back(model, version, recorded.reason)
            return
        readings = self._signals.watch_readings(model, version, promotion.moved_at)
        found = breach(readings, self._spec.watch)
        if found is None:
            return
        minutes = (self._clock() - promotion.moved_at).total_seconds() / 60
        reason = f"watch: {found.reason}, {minutes:.1f} min after the promotion"
        last = history[-1].action if history else None
        try:
            self._registry.record_rollout(
                model,
                version,
                "rolled_back",
                actor=CONTROLLER_ACTOR,
                reason=reason,
                policy=self._spec.policy_name,
                details={**found.details, "promoted_at": promotion.moved_at.isoformat()},
                after=frozenset({last}),
            )
        except RegistryError as error:
            log.info("rollback of %s %s is another controller's: %s", model, version, error)
            return
        self._roll_back(model, version, reason)

    def _roll_back(self, model: str, version: str, reason: str) -> None:
        try:
            move = self._registry.rollback(model, PRODUCTION, reason, only_from=version)
        except RegistryError as error:
            log.info("production of %s no longer names %s: %s", model, version, error)
            return
        self._metrics.rollbacks.labels(model).inc()
        self._metrics.last_rollback.labels(model).set(move.moved_at.timestamp())
        log.warning(
            "rolled back %s from %s to %s: %s",
            model,
            version,
            move.version,
            reason,
            extra={"model": model, "version": version, "restored": move.version},
        )


def _with_newer(context: RolloutContext, newer: str | None) -> RolloutContext:
    return RolloutContext(context.production, context.shadow_alias, newer, context.observations)
