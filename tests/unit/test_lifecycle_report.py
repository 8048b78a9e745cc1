"""The demo's report: the summary rows and the page, from a real registry and a recorded outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from berg.registry import ModelRegistry
from berg_app.lifecycle.live import LiveTally
from berg_app.lifecycle.report import group_triggers, summary_rows, write_report
from berg_app.lifecycle.story import Moment, StoryOutcome
from berg_app.lifecycle.timeline import plan_timeline
from tests.unit.registry.conftest import make_metadata

START = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class RecordedPrometheus:
    """Answers every range query with one series (the report only plots them)."""

    def query_range(self, query: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        values = [[start + i * step, str(0.01 * i)] for i in range(int((end - start) // step) + 1)]
        return [{"metric": {"version": "v0001"}, "values": values}]


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "registry")
    registry.register("fraud", {"model.bst": b"first"}, make_metadata(pr_auc=0.67, baseline_pr_auc=0.02))
    challenger = make_metadata(
        parent="v0001",
        pr_auc=0.63,
        champion_pr_auc=0.49,
        baseline_pr_auc=0.04,
        expected_cost=3432.0,
        champion_expected_cost=6732.0,
        baseline_expected_cost=9000.0,
    )
    registry.register("fraud", {"model.bst": b"second"}, challenger)
    return registry


@pytest.fixture
def outcome() -> StoryOutcome:
    timeline = plan_timeline(START, window_days=14, horizon_days=30, after_days=2)
    outcome = StoryOutcome(timeline, START, first_version="v0001", new_version="v0002", decision="promote: lift")
    outcome.challenger = {"id": "run-1", "status": "succeeded", "result_version": "v0002", "reason": "alert"}
    outcome.runs = [{"source": "manual"}, {"source": "alert"}]
    outcome.live = LiveTally(calls=3, versions=["v0001"] * 8 + ["v0002"] * 16)
    for what, seconds in (("serving sees the drift", 60), ("alert firing", 196), ("serving the challenger", 293)):
        outcome.moments.append(Moment(what, START + timedelta(seconds=seconds)))
    return outcome


def test_summary_rows_tell_the_loop(registry: ModelRegistry, outcome: StoryOutcome) -> None:
    rows = dict(summary_rows(outcome, registry, "fraud"))
    assert rows["champion"] == "v0001"
    assert rows["challenger promoted"] == "v0002"
    assert rows["v0002 champion_pr_auc (its test window)"] == "0.4900"
    assert rows["drift served -> alert firing"] == "136 s"
    assert rows["alert firing -> challenger served"] == "97 s"
    assert rows["drift served -> challenger served"] == "233 s"
    assert rows["alert-started runs"] == "1"
    assert rows["live traffic, in order"] == "v0001 x 8 -> v0002 x 16; failed calls 0"
    assert rows["demo wall time"] == "293 s"


def test_the_page_compares_champion_challenger_and_baseline(
    registry: ModelRegistry, outcome: StoryOutcome, tmp_path: Path
) -> None:
    page = write_report(tmp_path / "report.html", outcome, RecordedPrometheus(), registry, "fraud").read_text()  # type: ignore[arg-type]
    assert page.count('src="data:image/png;base64,') == 2
    assert "Champion vs challenger vs baseline" in page
    assert "v0001 x 8 -&gt; v0002 x 16" in page


def test_without_a_challenger_there_is_nothing_to_compare(
    registry: ModelRegistry, outcome: StoryOutcome, tmp_path: Path
) -> None:
    outcome.challenger = None
    page = write_report(tmp_path / "report.html", outcome, RecordedPrometheus(), registry, "fraud").read_text()  # type: ignore[arg-type]
    assert page.count('src="data:image/png;base64,') == 1
    assert "Champion vs challenger vs baseline" not in page


def _trigger(at: str, decision: str, reason: str, alertname: str | None = "FeatureDriftHigh") -> dict[str, Any]:
    return {"created_at": at, "source": "alert", "alertname": alertname, "decision": decision, "reason": reason}


def test_identical_decisions_are_grouped_with_a_count_and_their_first_and_last_time() -> None:
    busy = "a run is already active: run-2"
    triggers = [
        _trigger("2026-11-27T12:03:00.250000Z", "active_run", busy),
        _trigger("2026-11-27T12:01:00Z", "started", "FeatureDriftHigh firing"),
        *(_trigger(f"2026-11-27T12:02:{second:02d}Z", "active_run", busy) for second in range(40)),
        _trigger("2026-11-27T12:02:30Z", "active_run", busy, alertname="PredictionDriftHigh"),
        _trigger("2026-11-27T12:03:00Z", "active_run", busy),
        {"created_at": "2026-11-27T11:00:00+00:00", "source": "manual", "alertname": None, "decision": "started"},
    ]
    groups = group_triggers(triggers)
    assert [(g.source, g.alertname, g.decision, g.count) for g in groups] == [
        ("manual", "", "started", 1),
        ("alert", "FeatureDriftHigh", "started", 1),
        ("alert", "FeatureDriftHigh", "active_run", 42),
        ("alert", "PredictionDriftHigh", "active_run", 1),
    ]
    repeated = groups[2]
    assert repeated.reason == busy
    # Time order, not text order: "12:03:00Z" is before "12:03:00.250000Z".
    assert (repeated.first_at, repeated.last_at) == ("2026-11-27T12:02:00Z", "2026-11-27T12:03:00.250000Z")
    assert group_triggers([]) == []


def test_the_page_shows_one_row_per_group_of_identical_decisions(
    registry: ModelRegistry, outcome: StoryOutcome, tmp_path: Path
) -> None:
    outcome.triggers = [_trigger(f"2026-11-27T12:02:{second:02d}Z", "active_run", "busy") for second in range(30)]
    outcome.triggers.append(_trigger("2026-11-27T12:01:00Z", "started", "drift"))
    page = write_report(tmp_path / "report.html", outcome, RecordedPrometheus(), registry, "fraud").read_text()  # type: ignore[arg-type]
    table = page[page.index("Triggers the controller saw") :]
    assert table.count("<td>active_run</td>") == 1
    assert "<td>30</td>" in table
    assert table.index("<td>started</td>") < table.index("<td>active_run</td>")
