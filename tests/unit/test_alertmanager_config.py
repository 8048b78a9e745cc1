"""The generated Alertmanager config: amtool accepts it and routes retraining alerts to the controller."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from berg_app.stack.layout import StateLayout
from berg_app.stack.monitoring_config import (
    CONTROLLER_RECEIVER,
    DEFAULT_RECEIVER,
    ONCALL_RECEIVER,
    RETRAINING_ALERTS,
    ROLLBACK_ALERT,
    alert_rules,
    alertmanager_config,
    ensure_controller_token,
    write_yaml,
)
from berg_app.stack.settings import PortTable, StackSettings

pytestmark = pytest.mark.unit

OTHER_ALERTS = ["FeatureDriftWatched", "ServingErrorRateHigh", "ServingLatencyHigh", "IngestionStalled", "ExporterDown"]


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(state_dir=tmp_path, ports=PortTable(controller=18107))


@pytest.fixture
def layout(settings: StackSettings) -> StateLayout:
    layout = StateLayout.at(settings.state_dir)
    layout.create()
    return layout


@pytest.fixture
def config_file(settings: StackSettings, layout: StateLayout) -> Path:
    ensure_controller_token(layout)
    return write_yaml(layout.alertmanager_file, alertmanager_config(settings, layout))


@pytest.fixture(scope="module")
def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.skip("amtool is not on PATH: apt-get install prometheus-alertmanager (scripts/bootstrap.sh installs it)")
    return path


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def route(amtool: str, config_file: Path, *labels: str) -> str:
    result = run(amtool, "config", "routes", "test", f"--config.file={config_file}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_amtool_accepts_the_config(amtool: str, config_file: Path) -> None:
    result = run(amtool, "check-config", str(config_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_drift_alert_goes_to_the_controller(amtool: str, config_file: Path) -> None:
    assert route(amtool, config_file, "alertname=FeatureDriftHigh", "model=fraud") == CONTROLLER_RECEIVER


@pytest.mark.parametrize("alertname", RETRAINING_ALERTS)
def test_every_retraining_alert_goes_to_the_controller(amtool: str, config_file: Path, alertname: str) -> None:
    assert route(amtool, config_file, f"alertname={alertname}", "model=fraud", "severity=warning") == (
        CONTROLLER_RECEIVER
    )


@pytest.mark.parametrize("alertname", OTHER_ALERTS)
def test_other_alerts_go_to_the_default_receiver(amtool: str, config_file: Path, alertname: str) -> None:
    assert route(amtool, config_file, f"alertname={alertname}", "severity=critical") == DEFAULT_RECEIVER


def test_an_alert_named_like_a_retraining_one_is_not_sent_to_the_controller(amtool: str, config_file: Path) -> None:
    assert route(amtool, config_file, "alertname=FeatureDriftHighish", "model=fraud") == DEFAULT_RECEIVER


def test_a_rollback_goes_to_a_person_never_to_the_controller(amtool: str, config_file: Path) -> None:
    assert route(amtool, config_file, f"alertname={ROLLBACK_ALERT}", "model=fraud", "severity=critical") == (
        ONCALL_RECEIVER
    )


def test_the_controller_webhook_sends_resolved_alerts_with_a_bearer_token_file(
    settings: StackSettings, layout: StateLayout
) -> None:
    config = alertmanager_config(settings, layout)
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    assert set(receivers[DEFAULT_RECEIVER]) == {"name"}, "the default receiver has no integration"
    [webhook] = receivers[CONTROLLER_RECEIVER]["webhook_configs"]
    assert webhook["url"] == "http://127.0.0.1:18107/alerts"
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": str(layout.controller_token),
    }
    [_, controller_route] = config["route"]["routes"]
    assert controller_route["receiver"] == CONTROLLER_RECEIVER
    assert controller_route["group_by"] == ["alertname", "model"]
    assert controller_route["group_wait"] == "10s"


def test_the_generated_yaml_has_no_aliases(config_file: Path) -> None:
    assert "&id" not in config_file.read_text()


def test_the_token_file_is_private_random_and_created_once(layout: StateLayout) -> None:
    path = ensure_controller_token(layout)
    assert path == layout.root / "secrets" / "controller-token"
    token = path.read_text()
    assert len(token) >= 43, "secrets.token_urlsafe(32) is 43 characters"
    assert token.strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ensure_controller_token(layout).read_text() == token, "a second `berg up` reuses the token"
    assert not [leftover for leftover in path.parent.iterdir() if leftover != path]


def test_each_state_directory_gets_its_own_token(tmp_path: Path) -> None:
    first = StateLayout.at(tmp_path / "a")
    second = StateLayout.at(tmp_path / "b")
    assert ensure_controller_token(first).read_text() != ensure_controller_token(second).read_text()


def test_an_empty_token_file_is_replaced(layout: StateLayout) -> None:
    layout.controller_token.parent.mkdir(parents=True)
    layout.controller_token.write_text("\n")
    assert len(ensure_controller_token(layout).read_text()) >= 43


def test_every_retraining_alert_is_a_rule_of_the_rule_file() -> None:
    document = yaml.safe_load(alert_rules().read_text())
    alerts = {rule["alert"] for group in document["groups"] for rule in group["rules"] if "alert" in rule}
    assert set(RETRAINING_ALERTS) <= alerts
    assert set(OTHER_ALERTS) == alerts - set(RETRAINING_ALERTS) - {ROLLBACK_ALERT}
