"""Alertmanager's webhook payload, version 4: what the retraining controller receives.

Alertmanager POSTs one of these to a ``webhook_config`` receiver for each group
notification (see https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
A firing alert's ``endsAt`` is Go's zero time (``0001-01-01T00:00:00Z``) or its
expected resolve time; ``truncatedAlerts`` counts the alerts left out by the
receiver's ``max_alerts``.

Like every Berg contract the models refuse unknown fields and bound every string
and collection; the payload's own ``version`` is the contract version.

Example:
    >>> payload = AlertmanagerWebhookV4.model_validate_json(body)
    >>> [alert.labels.get("model") for alert in payload.alerts if alert.status == "firing"]
    ['my-model']
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from berg.contracts._types import CONTRACT_CONFIG, UtcDatetime

__all__ = [
    "DATA_VOLUME_ALERT",
    "MAX_ALERTS",
    "RETRAINING_ALERTS",
    "ROLLBACK_ALERT",
    "AlertStatus",
    "AlertV4",
    "AlertmanagerWebhookV4",
    "Labels",
]

DATA_VOLUME_ALERT = "NewLabelledDataVolume"
"""The monitoring alert that says enough new labelled rows arrived since the production training window."""
RETRAINING_ALERTS = ("FeatureDriftHigh", "PredictionDriftHigh", "ModelQualityDegraded", DATA_VOLUME_ALERT)
"""The alerts of Berg's rules (``berg.rules.yml``) that call for retraining: Alertmanager routes them to the
controller, which starts a run on them by default."""

ROLLBACK_ALERT = "ModelRolledBack"
"""Fires while the controller's watch rolled a model back recently: for a person, never a retraining trigger
(retraining on it would train the same data again); the controller refuses it in ``trigger_alerts``."""

MAX_ALERTS = 1000
"""Most alerts in one notification; set ``max_alerts`` on the receiver below this (the body limit applies too)."""
MAX_LABELS = 64
"""Most labels (or annotations) on one alert or group."""

AlertStatus = Literal["firing", "resolved"]
LabelName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
LabelValue = Annotated[str, StringConstraints(max_length=4096)]
AnnotationValue = Annotated[str, StringConstraints(max_length=16_384)]
Url = Annotated[str, StringConstraints(max_length=4096)]
Labels = Annotated[dict[LabelName, LabelValue], Field(max_length=MAX_LABELS)]
"""Label name to value."""
Annotations = Annotated[dict[LabelName, AnnotationValue], Field(max_length=MAX_LABELS)]


class AlertV4(BaseModel):
    """One alert of a notification."""

    model_config = CONTRACT_CONFIG

    status: AlertStatus
    labels: Labels
    """Identify the alert: ``alertname`` and, for Berg's model alerts, ``model``."""
    annotations: Annotations = Field(default_factory=dict)
    """Free text: ``summary``, ``description``, ``runbook_url``."""
    startsAt: UtcDatetime  # the wire names are camelCase
    """When the alert started firing; with the fingerprint, it identifies one occurrence."""
    endsAt: UtcDatetime
    """When it resolved (or is expected to); Go's zero time ``0001-01-01T00:00:00Z`` when unknown."""
    generatorURL: Url = ""
    """Link to the rule's expression in Prometheus."""
    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """Hash of the labels (16 hex digits from Alertmanager): the same alert keeps its fingerprint."""

    @property
    def alertname(self) -> str:
        """The ``alertname`` label, or ``""`` when it is missing."""
        return self.labels.get("alertname", "")


class AlertmanagerWebhookV4(BaseModel):
    """The body of one webhook notification."""

    model_config = CONTRACT_CONFIG

    version: Literal["4"]
    groupKey: Annotated[str, StringConstraints(max_length=8192)]
    """Identifies the alert group (route and group labels); stable across notifications of the group."""
    truncatedAlerts: Annotated[int, Field(ge=0)] = 0
    """Alerts left out of ``alerts`` by the receiver's ``max_alerts``."""
    status: AlertStatus
    """``firing`` when at least one alert of the group fires."""
    receiver: Annotated[str, StringConstraints(max_length=1024)]
    groupLabels: Labels = Field(default_factory=dict)
    commonLabels: Labels = Field(default_factory=dict)
    commonAnnotations: Annotations = Field(default_factory=dict)
    externalURL: Url = ""
    """Alertmanager's own address."""
    alerts: Annotated[list[AlertV4], Field(max_length=MAX_ALERTS)]
