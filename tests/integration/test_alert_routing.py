"""The stack's Prometheus loads Berg's rule file; its Alertmanager holds the route to the controller."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import yaml

from berg_app.stack.local import LocalStack
from berg_app.stack.monitoring_config import ALERT_RULES_FILE, CONTROLLER_RECEIVER, alert_rules, controller_webhook_url

pytestmark = pytest.mark.integration


def shipped_rules() -> dict[str, set[str]]:
    document = yaml.safe_load(alert_rules().read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    return {
        "alerting": {rule["alert"] for rule in rules if "alert" in rule},
        "recording": {rule["record"] for rule in rules if "record" in rule},
    }


def loaded_rules(stack: LocalStack) -> list[dict[str, Any]]:
    url = f"http://{stack.settings.host}:{stack.settings.ports.prometheus}/api/v1/rules"
    body = httpx.get(url, timeout=5).json()
    assert body["status"] == "success", body
    return [dict(rule, file=group["file"]) for group in body["data"]["groups"] for rule in group["rules"]]


def test_the_stack_installs_the_shipped_rule_file(stack: LocalStack) -> None:
    installed = stack.layout.rules / ALERT_RULES_FILE
    assert installed.read_bytes() == alert_rules().read_bytes()


def test_prometheus_loaded_and_evaluates_every_rule_of_the_file(stack: LocalStack) -> None:
    expected = shipped_rules()
    deadline = time.monotonic() + 30
    while True:
        rules = [rule for rule in loaded_rules(stack) if rule["file"] == str(stack.layout.rules / ALERT_RULES_FILE)]
        loaded = {kind: {rule["name"] for rule in rules if rule["type"] == kind} for kind in expected}
        evaluated = all(rule["health"] != "unknown" for rule in rules)
        if (loaded == expected and evaluated) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert loaded == expected
    failing = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not failing, f"rules that failed to evaluate: {failing}"


def test_alertmanager_runs_the_route_to_the_controller(stack: LocalStack) -> None:
    base = f"http://{stack.settings.host}:{stack.settings.ports.alertmanager}"
    config = yaml.safe_load(httpx.get(f"{base}/api/v2/status", timeout=5).json()["config"]["original"])
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    [webhook] = receivers[CONTROLLER_RECEIVER]["webhook_configs"]
    assert webhook["url"] == controller_webhook_url(stack.settings)
    assert webhook["http_config"]["authorization"]["credentials_file"] == str(stack.layout.controller_token)
    assert stack.layout.controller_token.read_text().strip()
