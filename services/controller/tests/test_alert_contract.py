"""The Alertmanager webhook payload (version 4) as a Berg contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from services.controller.tests.helpers import alert, webhook

from berg.contracts.alerts import MAX_ALERTS, AlertmanagerWebhookV4

pytestmark = pytest.mark.unit

# As Alertmanager 0.25+ sends it (docs: https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
ALERTMANAGER_BODY = """{
  "receiver": "berg-controller",
  "status": "firing",
  "alerts": [{
    "status": "firing",
    "labels": {"alertname": "FeatureDriftHigh", "model": "fraud", "feature": "amount_eur", "severity": "warning"},
    "annotations": {"summary": "PSI of amount_eur above 0.2"},
    "startsAt": "2026-01-01T10:00:00.123456789+01:00",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus:9090/graph?g0.expr=berg_monitoring_feature_psi+%3E+0.2",
    "fingerprint": "a1b2c3d4e5f60718"
  }],
  "groupLabels": {"alertname": "FeatureDriftHigh", "model": "fraud"},
  "commonLabels": {"alertname": "FeatureDriftHigh", "model": "fraud"},
  "commonAnnotations": {"summary": "PSI of amount_eur above 0.2"},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}:{alertname=\\"FeatureDriftHigh\\", model=\\"fraud\\"}",
  "truncatedAlerts": 0
}"""


def test_parses_what_alertmanager_sends() -> None:
    payload = AlertmanagerWebhookV4.model_validate_json(ALERTMANAGER_BODY)
    (only,) = payload.alerts
    assert only.alertname == "FeatureDriftHigh"
    assert only.labels["model"] == "fraud"
    # Nanoseconds and any zone are accepted; times are normalised to UTC.
    assert only.startsAt == datetime(2026, 1, 1, 9, 0, 0, 123456, tzinfo=UTC)
    assert only.endsAt.year == 1


def test_round_trip() -> None:
    payload = AlertmanagerWebhookV4.model_validate(webhook(alert(), alert(status="resolved")))
    again = AlertmanagerWebhookV4.model_validate_json(payload.model_dump_json())
    assert again == payload


@pytest.mark.parametrize(
    "change",
    [
        {"version": "3"},
        {"status": "pending"},
        {"unexpected": 1},
        {"truncatedAlerts": -1},
        {"alerts": "nope"},
        {"alerts": [{**alert(), "status": "silenced"}]},
        {"alerts": [{**alert(), "fingerprint": ""}]},
        {"alerts": [{**alert(), "startsAt": "2026-01-01T00:00:00"}]},  # naive
        {"alerts": [{**alert(), "labels": {f"l{i}": "v" for i in range(65)}}]},
        {"alerts": [alert()] * (MAX_ALERTS + 1)},
    ],
)
def test_refuses_what_is_not_a_v4_payload(change: dict[str, object]) -> None:
    body = {**webhook(alert()), **change}
    with pytest.raises(ValidationError):
        AlertmanagerWebhookV4.model_validate_json(json.dumps(body))


def test_alertname_defaults_to_empty() -> None:
    body = alert()
    body["labels"] = {"model": "fraud"}
    payload = AlertmanagerWebhookV4.model_validate(webhook(body))
    assert payload.alerts[0].alertname == ""
