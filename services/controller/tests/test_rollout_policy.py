"""The rollout policy (pure): every transition, supersede, shadow+approval composed, and failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from services.controller.tests.helpers import alert, settings_for

from berg.contracts.alerts import ROLLBACK_ALERT, AlertV4
from berg.problem.card import RolloutSpec, WatchRule
from berg.registry.aliases import AliasMove
from berg.registry.rollout import RolloutEvent
from berg_controller.policy import DEFAULT_TRIGGER_ALERTS, ModelState, PolicyConfig, decide, trigger_from_alert
from berg_controller.rollout import RolloutContext, ShadowObservation, next_step, promotion_reason
from berg_controller.settings import ControllerSettings
from berg_controller.watch import Breach, WatchReadings, breach, watched_promotion

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec(policy: str = "shadow+approval", *, min_predictions: int = 100, min_labelled: int = 10) -> RolloutSpec:
    return RolloutSpec.model_validate(
        {
            "policy": policy,
            "shadow": {"min_predictions": min_predictions, "min_labelled": min_labelled, "max_quality_drop": 0.02},
        }
    )


def events(*actions: str, actor: str = "berg-controller") -> list[RolloutEvent]:
    return [
        RolloutEvent.model_validate(
            {"action": action, "at": T0 + timedelta(minutes=i), "actor": actor, "reason": f"because {action}"}
        )
        for i, action in enumerate(actions)
    ]


def seen(
    predictions: int = 150,
    labelled: int = 20,
    champion: float | None = 0.80,
    shadow: float | None = 0.81,
    *,
    champion_version: str = "v0001",
) -> ShadowObservation:
    return ShadowObservation(champion_version, "v0002", predictions, labelled, champion, shadow)


def context(*observations: ShadowObservation, shadow_alias: str | None = "v0002", **kw: str | None) -> RolloutContext:
    return RolloutContext(
        production=kw.get("production", "v0001"),
        shadow_alias=shadow_alias,
        newer_candidate=kw.get("newer_candidate"),
        observations=observations,
    )


def test_a_candidate_under_a_shadow_policy_starts_its_shadow() -> None:
    step = next_step(spec(), "v0002", events("candidate"), context(shadow_alias=None))

    assert step.kind == "start_shadow"
    assert step.action == "shadow_started"
    assert step.after == frozenset({"candidate"})
    assert "champion v0001" in step.reason


def test_a_candidate_under_approval_alone_waits_for_a_person() -> None:
    step = next_step(spec("approval"), "v0002", events("candidate"), context(shadow_alias=None))

    assert (step.kind, step.action, step.after) == ("await_approval", "awaiting_approval", frozenset({"candidate"}))


def test_a_candidate_under_offline_is_promoted() -> None:
    step = next_step(spec("offline"), "v0002", events("candidate"), context(shadow_alias=None))

    assert (step.kind, step.action) == ("promote", "promoted")


def test_with_no_champion_the_shadow_stage_is_skipped() -> None:
    step = next_step(spec(), "v0002", events("candidate"), context(shadow_alias=None, production=None))

    assert step.kind == "await_approval"


def test_a_shadow_waits_until_it_has_the_predictions_and_labels_it_needs() -> None:
    history = events("candidate", "shadow_started")

    assert next_step(spec(), "v0002", history, context()).kind == "wait"
    assert next_step(spec(), "v0002", history, context(seen(predictions=99))).kind == "wait"
    assert next_step(spec(), "v0002", history, context(seen(labelled=9))).kind == "wait"
    assert next_step(spec(), "v0002", history, context(seen(champion=None))).kind == "wait"


def test_observations_beside_a_retired_champion_do_not_count() -> None:
    history = events("candidate", "shadow_started")

    step = next_step(spec(), "v0002", history, context(seen(champion_version="v0000")))

    assert step.kind == "wait"


def test_a_shadow_as_good_as_the_champion_within_the_margin_passes_with_its_figures() -> None:
    history = events("candidate", "shadow_started")

    step = next_step(spec(), "v0002", history, context(seen(champion=0.80, shadow=0.785)))

    assert (step.kind, step.action, step.after) == ("shadow_passed", "shadow_passed", frozenset({"shadow_started"}))
    assert step.details["shadow_pr_auc"] == 0.785
    assert step.details["champion_pr_auc"] == 0.80
    assert "150 shadow predictions, 20 labelled" in step.reason


def test_a_shadow_worse_than_the_margin_fails_and_leaves_the_shadow_alias() -> None:
    history = events("candidate", "shadow_started")

    step = next_step(spec(), "v0002", history, context(seen(champion=0.80, shadow=0.77)))

    assert (step.kind, step.action) == ("shadow_failed", "shadow_failed")
    assert step.clear_shadow


def test_with_no_labels_required_the_counts_alone_pass() -> None:
    history = events("candidate", "shadow_started")

    step = next_step(spec(min_labelled=0), "v0002", history, context(seen(labelled=0, champion=None, shadow=None)))

    assert step.kind == "shadow_passed"


def test_a_lost_shadow_alias_move_is_made_again() -> None:
    step = next_step(spec(), "v0002", events("candidate", "shadow_started"), context(seen(), shadow_alias=None))

    assert step.kind == "repoint_shadow"
    assert step.action is None


def test_shadow_and_approval_compose_in_order() -> None:
    after_shadow = next_step(spec(), "v0002", events("candidate", "shadow_started", "shadow_passed"), context())
    assert (after_shadow.kind, after_shadow.after) == ("await_approval", frozenset({"shadow_passed"}))

    waiting = next_step(
        spec(), "v0002", events("candidate", "shadow_started", "shadow_passed", "awaiting_approval"), context()
    )
    assert waiting.kind == "wait"

    approved = events("candidate", "shadow_started", "shadow_passed", "awaiting_approval", "approved")
    promote = next_step(spec(), "v0002", approved, context())
    assert (promote.kind, promote.action, promote.after) == ("promote", "promoted", frozenset({"approved"}))
    assert promote.clear_shadow


def test_shadow_alone_promotes_after_the_shadow_passes() -> None:
    step = next_step(spec("shadow"), "v0002", events("candidate", "shadow_started", "shadow_passed"), context())

    assert step.kind == "promote"


@pytest.mark.parametrize("final", ["shadow_failed", "rejected", "superseded", "rolled_back", "promoted"])
def test_a_finished_rollout_never_moves(final: str) -> None:
    assert next_step(spec(), "v0002", events("candidate", final), context(newer_candidate="v0003")).kind == "wait"


def test_a_version_that_was_never_a_candidate_never_moves() -> None:
    assert next_step(spec(), "v0002", [], context()).kind == "wait"


@pytest.mark.parametrize(
    "history",
    [("candidate",), ("candidate", "shadow_started"), ("candidate", "awaiting_approval"), ("candidate", "approved")],
)
def test_a_newer_candidate_supersedes_an_unfinished_one(history: tuple[str, ...]) -> None:
    step = next_step(spec(), "v0002", events(*history), context(seen(), newer_candidate="v0003"))

    assert (step.kind, step.action, step.after) == ("supersede", "superseded", frozenset({history[-1]}))
    assert step.details == {"superseded_by": "v0003"}
    assert step.clear_shadow  # the shadow alias names v0002


def test_a_superseded_version_leaves_a_shadow_alias_naming_another() -> None:
    step = next_step(spec(), "v0002", events("candidate"), context(shadow_alias="v0003", newer_candidate="v0003"))

    assert step.kind == "supersede"
    assert not step.clear_shadow


def test_the_promotion_reason_names_the_stages_with_figures_and_the_approver() -> None:
    history = events("candidate", "shadow_started", "shadow_passed", "awaiting_approval") + events(
        "approved", actor="alice"
    )

    reason = promotion_reason(history, "shadow+approval")

    assert reason.startswith("rollout shadow+approval: passed the offline gate")
    assert "shadow (because shadow_passed)" in reason
    assert "approved by alice (because approved)" in reason


# The watch


def move(action: str = "promote", *, minutes_ago: float = 5, previous: str | None = "v0001") -> AliasMove:
    return AliasMove.model_validate(
        {
            "version": "v0002",
            "moved_at": T0 - timedelta(minutes=minutes_ago),
            "previous": previous,
            "action": action,
        }
    )


def test_a_promotion_is_watched_only_within_the_window() -> None:
    window = timedelta(minutes=60)

    assert watched_promotion(move(minutes_ago=5), window, T0) is not None
    assert watched_promotion(move(minutes_ago=61), window, T0) is None
    assert watched_promotion(move(minutes_ago=5), timedelta(0), T0) is None
    assert watched_promotion(None, window, T0) is None


def test_a_rollback_is_never_watched_so_a_version_rolls_back_once() -> None:
    assert watched_promotion(move("rollback"), timedelta(minutes=60), T0) is None


RULE = WatchRule(window_minutes=60, max_prediction_psi=0.25, max_quality_drop=0.1)


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        (WatchReadings(prediction_psi=0.4), "prediction PSI 0.4000 above 0.25"),
        (WatchReadings(quality_drop=0.2), "live PR-AUC 0.2000 below its evaluation (allowed 0.1)"),
        (WatchReadings(firing_alerts=("ServingErrorRateHigh",)), "serving alert ServingErrorRateHigh firing"),
    ],
)
def test_each_breach_rolls_back_with_its_figures(readings: WatchReadings, expected: str) -> None:
    found = breach(readings, RULE)

    assert isinstance(found, Breach)
    assert found.reason == expected
    assert found.details["max_prediction_psi"] == 0.25


@pytest.mark.parametrize(
    "readings",
    [WatchReadings(), WatchReadings(prediction_psi=0.25, quality_drop=0.1), WatchReadings(prediction_psi=0.01)],
)
def test_missing_or_in_bounds_readings_are_no_breach(readings: WatchReadings) -> None:
    assert breach(readings, RULE) is None


# A rollback alert is for a person


def test_a_rollback_alert_that_reaches_the_webhook_starts_nothing() -> None:

    config = PolicyConfig(frozenset({"fraud"}), frozenset(DEFAULT_TRIGGER_ALERTS), timedelta(minutes=30))
    rolled_back = AlertV4.model_validate(alert("fraud", ROLLBACK_ALERT))

    verdict = decide(trigger_from_alert(rolled_back), ModelState(), config, T0)

    assert verdict.decision == "ignored"


def test_the_controller_refuses_a_rollback_alert_as_a_trigger(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ModelRolledBack: a rollback is for a person"):
        settings_for(tmp_path, trigger_alerts=["FeatureDriftHigh", "ModelRolledBack"])


def test_a_shadow_policy_needs_prometheus(tmp_path: Path) -> None:
    settings = settings_for_rollout(tmp_path)

    with pytest.raises(ValueError, match="BERG_CONTROLLER_PROMETHEUS_URL"):
        settings.check_rollout(spec("shadow"))
    settings.check_rollout(spec("approval"))
    settings_for_rollout(tmp_path, prometheus_url="http://127.0.0.1:9090").check_rollout(spec("shadow"))
    with pytest.raises(ValueError, match="not an http"):
        settings_for_rollout(tmp_path, prometheus_url="127.0.0.1:9090")


def settings_for_rollout(tmp_path: Path, **overrides: str) -> ControllerSettings:
    return settings_for(tmp_path, **overrides)
