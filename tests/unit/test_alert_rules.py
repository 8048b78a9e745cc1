"""Berg's rule file: promtool accepts it, its promtool unit tests pass, and every rule has a test."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from berg_app.stack.monitoring_config import alert_rules

pytestmark = pytest.mark.unit

RULES = Path(str(alert_rules()))
RULE_TESTS = sorted((RULES.parent / "tests").glob("*.test.yml"))
MONITORING_DOC = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"
RECORDING_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")
SEVERITIES = {"info", "warning", "critical"}


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


ALERTS = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
RECORDINGS = {rule["record"]: rule for rule in _rules() if "record" in rule}


def _test_groups() -> list[dict[str, Any]]:
    return [group for path in RULE_TESTS for group in yaml.safe_load(path.read_text())["tests"]]


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not on PATH: apt-get install prometheus (scripts/bootstrap.sh installs it)")
    return path


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_rule_file_and_its_tests_exist() -> None:
    assert RULES.is_file(), RULES
    assert RULE_TESTS, f"no *.test.yml beside {RULES}"
    assert ALERTS
    assert RECORDINGS


def test_promtool_accepts_the_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, f"promtool check rules failed:\n{result.stdout}{result.stderr}"


def test_the_rules_pass_their_promtool_unit_tests(promtool: str) -> None:
    result = run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, f"promtool test rules failed:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda path: path.name)
def test_every_test_file_tests_the_shipped_rule_file(path: Path) -> None:
    rule_files = yaml.safe_load(path.read_text())["rule_files"]
    assert [(path.parent / name).resolve() for name in rule_files] == [RULES.resolve()]


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_every_alert_is_tested_firing_and_not_firing(alertname: str) -> None:
    cases = [
        case for group in _test_groups() for case in group.get("alert_rule_test", []) if case["alertname"] == alertname
    ]
    assert cases, f"{alertname} has no alert_rule_test"
    assert any(case.get("exp_alerts") for case in cases), f"no alert_rule_test of {alertname} expects it to fire"
    assert any(not case.get("exp_alerts") for case in cases), f"no alert_rule_test of {alertname} expects silence"


@pytest.mark.parametrize("record", sorted(RECORDINGS))
def test_every_recording_rule_has_a_promql_expr_test(record: str) -> None:
    name = re.compile(rf"(?<![\w:]){re.escape(record)}(?![\w:])")
    expressions = [case["expr"] for group in _test_groups() for case in group.get("promql_expr_test", [])]
    assert any(name.search(expression) for expression in expressions), f"{record} has no promql_expr_test"


@pytest.mark.parametrize("record", sorted(RECORDINGS))
def test_recording_rules_are_named_level_metric_operations(record: str) -> None:
    assert RECORDING_NAME.match(record), f"{record} is not level:metric:operations"


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_every_alert_says_how_bad_what_and_where_to_look(alertname: str) -> None:
    rule = ALERTS[alertname]
    assert "for" in rule, f"{alertname} has no for:"
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"]["component"]
    assert {"summary", "description", "runbook"} <= set(rule["annotations"])


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_every_runbook_is_a_section_of_the_monitoring_doc(alertname: str) -> None:
    document, _, anchor = ALERTS[alertname]["annotations"]["runbook"].partition("#")
    assert document == "docs/monitoring.md"
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in MONITORING_DOC.read_text().splitlines()
        if line.startswith("#")
    }
    assert anchor in headings, f"docs/monitoring.md has no heading for #{anchor}"
