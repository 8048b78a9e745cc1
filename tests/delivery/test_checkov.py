"""Checkov over every rendered scenario: no failed check; each skip in helm/berg/.checkov.yaml says why."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.delivery.conftest import Rendered
from tests.delivery.tools import CHART, require_tool, run_tool

CONFIG = CHART / ".checkov.yaml"


@pytest.mark.unit
def test_every_skip_has_a_reason() -> None:
    skipped = yaml.safe_load(CONFIG.read_text())["skip-check"]
    reasons = dict(re.findall(r"^\s*- (CKV\w+)\s+#\s*(\S.*)$", CONFIG.read_text(), re.MULTILINE))
    assert skipped, "no skips: remove the skip-check list"
    for check in skipped:
        assert len(reasons.get(check, "").split()) >= 8, f"{check} is skipped without a reason on its line"


@pytest.mark.integration
@pytest.mark.slow
def test_checkov_passes(rendered: dict[str, Rendered], rendered_dir: Path) -> None:
    checkov = require_tool("checkov")
    result = run_tool([checkov, "--config-file", str(CONFIG), "--directory", str(rendered_dir), "--output", "json"])
    assert result.stdout, result.stderr
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{check['check_id']} {check['check_name']}: {check['resource']} ({Path(check['file_path']).name})"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert result.returncode == 0, result.stderr
    assert sum(report["summary"]["resource_count"] for report in reports) >= 10 * len(rendered)
    assert sum(report["summary"]["passed"] for report in reports) > 0
