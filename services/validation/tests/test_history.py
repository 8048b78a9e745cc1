"""The validation history is best effort: a project broken by a crash is set aside, a failing build never raises."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from services.validation.tests.helpers import STREAMS

from berg_fraud.rules import FraudRules
from berg_validation.history import BestEffortHistory, open_history

pytestmark = pytest.mark.unit


def test_a_project_left_half_written_by_a_crash_is_moved_aside_and_recreated(tmp_path: Path) -> None:
    project = tmp_path / "gx"
    registry = CollectorRegistry()
    first = open_history(project, STREAMS, FraudRules(), 60.0, registry)
    assert first is not None
    suites = sorted((project / "expectations").rglob("*.json"))
    assert suites, "the suites are stored in the project"
    suites[0].write_text("")  # what a SIGKILL in the middle of a write leaves

    again = open_history(project, STREAMS, FraudRules(), 60.0, CollectorRegistry())
    assert isinstance(again, BestEffortHistory)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("gx.broken-")], "the broken project is kept aside"
    assert (project / "expectations").is_dir()


def test_a_failing_build_is_counted_not_raised(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    history = open_history(tmp_path / "gx", STREAMS, FraudRules(), 60.0, registry)
    assert history is not None
    history.add(None)  # type: ignore[arg-type]  # not a result: DataDocs fails on it
    assert registry.get_sample_value("berg_validation_data_docs_failures_total") == 1
