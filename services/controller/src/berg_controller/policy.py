"""The retraining policy (pure, no I/O): which triggers start a pipeline run.

Every trigger (an alert, a schedule, the data volume, a person) becomes a
:class:`Trigger`; :func:`decide` weighs it against the model's
:class:`ModelState` and answers with a :class:`Verdict`:

- ``ignored``: a resolved alert, an alert name outside ``trigger_alerts``, no
  ``model`` label, or a model the controller does not manage;
- ``not_production``: the alert names a model version (its ``version`` label) that is
  not the one in production: a retired champion's stale series, or a version
  never promoted, say nothing about the model that serves (alerts without a
  ``version`` label, like the data-volume alert, are not checked);
- ``active_run``: the model has a run pending or running (at most one at a time);
- ``rollout_pending``: an automatic trigger while a challenger of the model is on its way to production
  (a candidate in its rollout: shadow, approval): it was trained for what the trigger says, and a run
  now would train on the same data and supersede it (manual triggers go on);
- ``cooldown``: an automatic trigger within ``cooldown`` of the model's last run
  start (manual triggers skip the cooldown, never the active-run check);
- ``started``: start a run.

Example:
    >>> config = PolicyConfig(models=frozenset({"my-model"}), trigger_alerts=frozenset({"FeatureDriftHigh"}),
    ...                       cooldown=timedelta(minutes=30))
    >>> decide(trigger_from_alert(alert), ModelState(), config, now).decision
    'started'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from berg.contracts.alerts import DATA_VOLUME_ALERT, RETRAINING_ALERTS, AlertV4
from berg_controller.cron import CronSchedule

__all__ = [
    "DATA_VOLUME_ALERT",
    "DEFAULT_TRIGGER_ALERTS",
    "Decision",
    "ModelState",
    "PolicyConfig",
    "Trigger",
    "TriggerSource",
    "Verdict",
    "data_volume_trigger",
    "decide",
    "managed_model",
    "manual_trigger",
    "needs_production_version",
    "needs_rollout_state",
    "schedule_trigger",
    "trigger_from_alert",
]

TriggerSource = Literal["alert", "schedule", "data_volume", "manual"]
Decision = Literal["started", "cooldown", "active_run", "rollout_pending", "ignored", "not_production"]

DEFAULT_TRIGGER_ALERTS = RETRAINING_ALERTS
"""The alerts of Berg's rules that start a run by default (``DATA_VOLUME_ALERT``'s triggers count as
``data_volume``)."""

_MAX_REASON = 500


@dataclass(frozen=True)
class PolicyConfig:
    """The policy's settings."""

    models: frozenset[str]
    """The models the controller retrains."""
    trigger_alerts: frozenset[str]
    """Alert names that start a run when they fire."""
    cooldown: timedelta
    """Least time between the start of a model's run and an automatic trigger that starts the next."""


@dataclass(frozen=True)
class Trigger:
    """Something that asks for a run of ``model``."""

    source: TriggerSource
    model: str
    """The model it names (``""`` when an alert has no ``model`` label)."""
    reason: str
    alertname: str = ""
    """The alert's name, for alert triggers."""
    firing: bool = True
    """False for a resolved alert."""
    version: str = ""
    """The model version the alert is about (its ``version`` label); ``""`` when it names none."""


@dataclass(frozen=True)
class ModelState:
    """What the policy needs to know about a model's runs."""

    active_run: str | None = None
    """The id of its pending or running run, if any."""
    last_started_at: datetime | None = None
    """When its latest run was created (any source, any outcome)."""
    production_version: str | None = None
    """The version the registry's ``production`` alias names at decision time, None when none is in
    production. Read only for triggers that name a version (see :func:`needs_production_version`)."""
    rollout_pending: str | None = None
    """The newest version of the model still on its way to production (its rollout unfinished), if any.
    Read only for automatic triggers (see :func:`needs_rollout_state`)."""


@dataclass(frozen=True)
class Verdict:
    """The policy's answer to one trigger, with the reason recorded in the trigger history."""

    decision: Decision
    reason: str

    @property
    def starts_run(self) -> bool:
        return self.decision == "started"


def _bounded(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def managed_model(model: str, config: PolicyConfig) -> str:
    """``model`` when the controller manages it, else ``""``: bounds metric labels and alert keys."""
    return model if model in config.models else ""


def trigger_from_alert(alert: AlertV4) -> Trigger:
    """The trigger an alert stands for: its ``model`` label, its name, firing or resolved."""
    name = alert.alertname
    source: TriggerSource = "data_volume" if name == DATA_VOLUME_ALERT else "alert"
    summary = alert.annotations.get("summary", "")
    reason = f"{alert.status} alert {name or '(no alertname)'}" + (f": {summary}" if summary else "")
    return Trigger(
        source=source,
        model=alert.labels.get("model", ""),
        reason=_bounded(reason),
        alertname=name,
        firing=alert.status == "firing",
        version=alert.labels.get("version", ""),
    )


def manual_trigger(model: str, reason: str) -> Trigger:
    """A person asked for a run (``POST /runs``)."""
    return Trigger(source="manual", model=model, reason=_bounded(f"manual: {reason}" if reason else "manual"))


def schedule_trigger(model: str, schedule: CronSchedule, after: datetime, until: datetime) -> Trigger | None:
    """A trigger when ``schedule`` fired in ``(after, until]``, else None (once per window, however many slots)."""
    fired = schedule.fired_between(after, until)
    if fired is None:
        return None
    return Trigger(source="schedule", model=model, reason=f"schedule '{schedule.expression}' at {fired.isoformat()}")


def data_volume_trigger(model: str, new_rows: int | None, threshold: int) -> Trigger | None:
    """A trigger when ``new_rows`` labelled rows (since the champion's training window) reach ``threshold``.

    None when the count is unknown, the threshold is off (0) or not reached.
    """
    if new_rows is None or threshold <= 0 or new_rows < threshold:
        return None
    return Trigger(
        source="data_volume", model=model, reason=f"{new_rows} new labelled rows reached the threshold {threshold}"
    )


def needs_production_version(trigger: Trigger, config: PolicyConfig) -> bool:
    """Whether :func:`decide` compares ``trigger`` with the production version (so the caller looks it up)."""
    return trigger.firing and bool(trigger.version) and trigger.model in config.models


def needs_rollout_state(trigger: Trigger, config: PolicyConfig) -> bool:
    """Whether :func:`decide` asks if a challenger of ``trigger``'s model is in its rollout (so the caller looks)."""
    return trigger.firing and trigger.source != "manual" and trigger.model in config.models


def decide(trigger: Trigger, state: ModelState, config: PolicyConfig, now: datetime) -> Verdict:
    """Whether ``trigger`` starts a run of its model, and why (or why not)."""
    if not trigger.firing:
        return Verdict("ignored", "resolved alerts start nothing")
    if trigger.source in ("alert", "data_volume") and trigger.alertname:
        if trigger.alertname not in config.trigger_alerts:
            return Verdict("ignored", f"alert {trigger.alertname} does not trigger retraining")
    elif trigger.source == "alert":
        return Verdict("ignored", "the alert has no alertname label")
    if not trigger.model:
        return Verdict("ignored", "no model label: the alert does not say which model to retrain")
    if trigger.model not in config.models:
        return Verdict("ignored", _bounded(f"model {trigger.model!r} is not managed by this controller"))
    if trigger.version and trigger.version != state.production_version:
        serving = (
            f"{state.production_version} is in production"
            if state.production_version is not None
            else "no version of it is in production"
        )
        return Verdict(
            "not_production",
            _bounded(
                f"the alert is about {trigger.model} {trigger.version}, but {serving}: "
                "only alerts about the production version start a run"
            ),
        )
    if state.active_run is not None:
        return Verdict("active_run", f"run {state.active_run} of {trigger.model} is still active")
    if trigger.source != "manual" and state.rollout_pending is not None:
        return Verdict(
            "rollout_pending",
            f"{trigger.model} {state.rollout_pending} is on its way to production (its rollout is not over): "
            "it answers this; a run now would train on the same data",
        )
    if trigger.source != "manual" and state.last_started_at is not None:
        elapsed = now - state.last_started_at
        if elapsed < config.cooldown:
            remaining = (config.cooldown - elapsed).total_seconds()
            return Verdict(
                "cooldown",
                f"the last run of {trigger.model} started {elapsed.total_seconds():.0f}s ago; "
                f"cooldown {config.cooldown.total_seconds():.0f}s ({remaining:.0f}s left)",
            )
    return Verdict("started", trigger.reason)
