"""The retraining policy: what starts a run, and why the rest does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from services.controller.tests.helpers import alert

from berg.contracts.alerts import AlertV4
from berg_controller.cron import CronSchedule
from berg_controller.policy import (
    DEFAULT_TRIGGER_ALERTS,
    ModelState,
    PolicyConfig,
    Trigger,
    data_volume_trigger,
    decide,
    managed_model,
    manual_trigger,
    needs_production_version,
    needs_rollout_state,
    schedule_trigger,
    trigger_from_alert,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CONFIG = PolicyConfig(
    models=frozenset({"fraud", "churn"}),
    trigger_alerts=frozenset(DEFAULT_TRIGGER_ALERTS),
    cooldown=timedelta(minutes=30),
)


def from_alert(**kwargs: object) -> Trigger:
    return trigger_from_alert(AlertV4.model_validate(alert(**kwargs)))  # type: ignore[arg-type]


@pytest.mark.parametrize("alertname", DEFAULT_TRIGGER_ALERTS)
def test_every_default_alert_starts_a_run(alertname: str) -> None:
    verdict = decide(from_alert(alertname=alertname), ModelState(), CONFIG, NOW)
    assert verdict.decision == "started"
    assert verdict.starts_run
    assert alertname in verdict.reason


def test_the_data_volume_alert_counts_as_data_volume() -> None:
    assert from_alert(alertname="NewLabelledDataVolume").source == "data_volume"
    assert from_alert(alertname="FeatureDriftHigh").source == "alert"


def test_resolved_alerts_start_nothing() -> None:
    verdict = decide(from_alert(status="resolved"), ModelState(), CONFIG, NOW)
    assert (verdict.decision, verdict.reason) == ("ignored", "resolved alerts start nothing")


def test_unknown_alert_names_are_ignored() -> None:
    verdict = decide(from_alert(alertname="KafkaConsumerLagHigh"), ModelState(), CONFIG, NOW)
    assert verdict.decision == "ignored"
    assert "KafkaConsumerLagHigh does not trigger retraining" in verdict.reason


def test_the_trigger_set_is_configurable() -> None:
    only_quality = PolicyConfig(CONFIG.models, frozenset({"ModelQualityDegraded"}), CONFIG.cooldown)
    assert decide(from_alert(alertname="FeatureDriftHigh"), ModelState(), only_quality, NOW).decision == "ignored"
    assert decide(from_alert(alertname="ModelQualityDegraded"), ModelState(), only_quality, NOW).starts_run


def test_an_alert_without_alertname_is_ignored() -> None:
    trigger = Trigger(source="alert", model="fraud", reason="?", alertname="")
    assert decide(trigger, ModelState(), CONFIG, NOW).reason == "the alert has no alertname label"


def test_a_missing_model_label_is_ignored() -> None:
    trigger = from_alert(model=None)
    assert trigger.model == ""
    verdict = decide(trigger, ModelState(), CONFIG, NOW)
    assert verdict.decision == "ignored"
    assert "no model label" in verdict.reason


def test_an_unmanaged_model_is_ignored() -> None:
    verdict = decide(from_alert(model="spam"), ModelState(), CONFIG, NOW)
    assert verdict.decision == "ignored"
    assert "'spam' is not managed" in verdict.reason
    assert managed_model("spam", CONFIG) == ""
    assert managed_model("fraud", CONFIG) == "fraud"


def test_an_alert_about_a_retired_version_starts_nothing() -> None:
    """The retired champion's drift series are stale and its alert keeps firing after a promotion."""
    trigger = from_alert(version="v0001")
    assert trigger.version == "v0001"
    verdict = decide(trigger, ModelState(production_version="v0002"), CONFIG, NOW)
    assert verdict.decision == "not_production"
    assert not verdict.starts_run
    assert verdict.reason == (
        "the alert is about fraud v0001, but v0002 is in production: only alerts about the production version "
        "start a run"
    )


@pytest.mark.parametrize("alertname", ["FeatureDriftHigh", "PredictionDriftHigh", "ModelQualityDegraded"])
def test_an_alert_about_the_production_version_starts_a_run(alertname: str) -> None:
    trigger = from_alert(alertname=alertname, version="v0002")
    assert decide(trigger, ModelState(production_version="v0002"), CONFIG, NOW).starts_run


def test_an_alert_about_a_version_when_none_is_in_production_starts_nothing() -> None:
    """Serving only serves the production version: with none there, an alert about a version is not about it."""
    verdict = decide(from_alert(version="v0001"), ModelState(production_version=None), CONFIG, NOW)
    assert verdict.decision == "not_production"
    assert "fraud v0001, but no version of it is in production" in verdict.reason


def test_alerts_without_a_version_keep_todays_rules() -> None:
    volume = from_alert(alertname="NewLabelledDataVolume")
    assert volume.version == ""
    assert decide(volume, ModelState(production_version="v0002"), CONFIG, NOW).starts_run
    assert decide(volume, ModelState(), CONFIG, NOW).starts_run
    assert not needs_production_version(volume, CONFIG)


def test_the_production_version_is_needed_only_for_firing_managed_alerts_with_a_version() -> None:
    assert needs_production_version(from_alert(version="v0001"), CONFIG)
    assert not needs_production_version(from_alert(version="v0001", status="resolved"), CONFIG)
    assert not needs_production_version(from_alert(model="spam", version="v0001"), CONFIG)
    assert not needs_production_version(manual_trigger("fraud", ""), CONFIG)
    # A resolved alert about a retired version is still just resolved.
    resolved = from_alert(version="v0001", status="resolved")
    assert decide(resolved, ModelState(production_version="v0002"), CONFIG, NOW).decision == "ignored"


def test_a_retired_version_is_named_before_the_active_run_or_the_cooldown() -> None:
    busy = ModelState(active_run="run-1", last_started_at=NOW, production_version="v0002")
    assert decide(from_alert(version="v0001"), busy, CONFIG, NOW).decision == "not_production"
    assert decide(from_alert(version="v0002"), busy, CONFIG, NOW).decision == "active_run"


def test_one_active_run_per_model() -> None:
    state = ModelState(active_run="run-1", last_started_at=NOW - timedelta(hours=5))
    for trigger in (from_alert(), manual_trigger("fraud", "please"), data_volume_trigger("fraud", 10, 5)):
        assert trigger is not None
        verdict = decide(trigger, state, CONFIG, NOW)
        assert verdict.decision == "active_run"
        assert "run-1" in verdict.reason


def test_a_challenger_in_its_rollout_holds_automatic_triggers_not_a_person() -> None:
    # The demo's loop, measured on a busy machine: the drift alerts about the champion went on firing while the
    # challenger they caused sat in its shadow stage, and once the cooldown passed a second run started.
    state = ModelState(last_started_at=NOW - timedelta(hours=5), rollout_pending="v0002")
    automatic = (from_alert(), data_volume_trigger("fraud", 10, 5), Trigger("schedule", "fraud", "cron"))
    for trigger in automatic:
        assert trigger is not None
        verdict = decide(trigger, state, CONFIG, NOW)
        assert verdict.decision == "rollout_pending"
        assert "v0002" in verdict.reason
        assert needs_rollout_state(trigger, CONFIG)
    manual = manual_trigger("fraud", "retrain anyway")
    assert not needs_rollout_state(manual, CONFIG)
    assert decide(manual, state, CONFIG, NOW).decision == "started"
    assert decide(from_alert(), ModelState(last_started_at=NOW - timedelta(hours=5)), CONFIG, NOW).starts_run


@pytest.mark.parametrize(
    ("elapsed", "decision"),
    [
        (timedelta(0), "cooldown"),
        (timedelta(minutes=29, seconds=59, microseconds=999_999), "cooldown"),
        (timedelta(minutes=30), "started"),
        (timedelta(minutes=31), "started"),
    ],
)
def test_cooldown_edges(elapsed: timedelta, decision: str) -> None:
    state = ModelState(last_started_at=NOW - elapsed)
    assert decide(from_alert(), state, CONFIG, NOW).decision == decision


def test_cooldown_reason_says_how_long_is_left() -> None:
    verdict = decide(from_alert(), ModelState(last_started_at=NOW - timedelta(minutes=10)), CONFIG, NOW)
    assert verdict.reason == "the last run of fraud started 600s ago; cooldown 1800s (1200s left)"


def test_cooldown_is_per_model() -> None:
    # The caller passes each model's own state: churn's recent run does not hold fraud back.
    fraud_state, churn_state = ModelState(), ModelState(last_started_at=NOW - timedelta(minutes=1))
    assert decide(from_alert(model="fraud"), fraud_state, CONFIG, NOW).starts_run
    assert decide(from_alert(model="churn"), churn_state, CONFIG, NOW).decision == "cooldown"


def test_a_zero_cooldown_allows_back_to_back_runs() -> None:
    config = PolicyConfig(CONFIG.models, CONFIG.trigger_alerts, timedelta(0))
    assert decide(from_alert(), ModelState(last_started_at=NOW), config, NOW).starts_run


def test_manual_runs_skip_the_cooldown_not_the_active_run_check() -> None:
    trigger = manual_trigger("fraud", "new features shipped")
    assert trigger.reason == "manual: new features shipped"
    assert decide(trigger, ModelState(last_started_at=NOW), CONFIG, NOW).starts_run
    assert decide(trigger, ModelState(active_run="r"), CONFIG, NOW).decision == "active_run"
    assert manual_trigger("fraud", "").reason == "manual"


def test_schedules_fire_once_per_window_and_respect_the_cooldown() -> None:
    nightly = CronSchedule.parse("0 3 * * *")
    before, after = datetime(2026, 1, 1, 2, 59, 30, tzinfo=UTC), datetime(2026, 1, 1, 3, 0, 5, tzinfo=UTC)
    trigger = schedule_trigger("fraud", nightly, before, after)
    assert trigger is not None
    assert trigger.source == "schedule"
    assert trigger.reason == "schedule '0 3 * * *' at 2026-01-01T03:00:00+00:00"
    assert decide(trigger, ModelState(), CONFIG, after).starts_run
    assert decide(trigger, ModelState(last_started_at=after - timedelta(minutes=5)), CONFIG, after).decision == (
        "cooldown"
    )
    assert schedule_trigger("fraud", nightly, after, after + timedelta(seconds=30)) is None


@pytest.mark.parametrize(
    ("rows", "threshold", "fires"),
    [(None, 100, False), (99, 100, False), (100, 100, True), (5000, 100, True), (5000, 0, False), (0, 0, False)],
)
def test_data_volume_threshold(rows: int | None, threshold: int, fires: bool) -> None:
    trigger = data_volume_trigger("fraud", rows, threshold)
    assert (trigger is not None) == fires
    if trigger is not None:
        assert trigger.source == "data_volume"
        assert trigger.reason == f"{rows} new labelled rows reached the threshold {threshold}"
        assert decide(trigger, ModelState(), CONFIG, NOW).starts_run


def test_reasons_are_bounded() -> None:
    trigger = from_alert(model="x" * 3000)
    verdict = decide(trigger, ModelState(), CONFIG, NOW)
    assert verdict.decision == "ignored"
    assert len(verdict.reason) <= 500
