"""Versions out of production fall silent after the grace period: the alias history read, and what is exported."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from berg.contracts import PredictionV3
from berg.registry import AliasMove, Lineage, ModelRegistry, VersionMetadata
from berg_fraud.use_case import problem_card
from berg_monitoring.drift_window import DriftSpec
from berg_monitoring.production import Production, departures
from berg_monitoring.references import ReferenceBook
from berg_monitoring.snapshot import SnapshotSettings, compute_snapshot
from berg_monitoring.windows import MonitoringState

pytestmark = pytest.mark.unit

T0 = datetime(2026, 6, 1, tzinfo=UTC)
GRACE = timedelta(minutes=2)


def move(version: str, minutes: float, action: str = "promote") -> AliasMove:
    return AliasMove.model_validate(
        {"version": version, "moved_at": T0 + timedelta(minutes=minutes), "previous": None, "action": action}
    )


def test_a_version_leaves_production_when_the_alias_moves_away_and_is_back_when_it_returns() -> None:
    assert departures([]) == {}
    assert departures([move("v0001", 0)]) == {}
    promoted = [move("v0001", 0), move("v0002", 10)]
    assert departures(promoted) == {"v0001": T0 + timedelta(minutes=10)}
    rolled_back = [*promoted, move("v0001", 20, "rollback")]
    assert departures(rolled_back) == {"v0002": T0 + timedelta(minutes=20)}
    again = [*rolled_back, move("v0003", 30), move("v0004", 40)]
    assert departures(again) == {
        "v0001": T0 + timedelta(minutes=30),  # its last departure counts
        "v0002": T0 + timedelta(minutes=20),
        "v0003": T0 + timedelta(minutes=40),
    }


def test_a_version_is_silenced_once_it_has_been_out_of_production_for_the_grace_period() -> None:
    production = Production("v0002", None, departures([move("v0001", 0), move("v0002", 10)]))
    left = T0 + timedelta(minutes=10)
    assert production.silenced(left, GRACE) == frozenset()
    assert production.silenced(left + GRACE - timedelta(seconds=1), GRACE) == frozenset()
    assert production.silenced(left + GRACE, GRACE) == {"v0001"}
    assert production.silenced(left, timedelta(0)) == {"v0001"}
    assert Production().silenced(left + GRACE, GRACE) == frozenset(), "nothing was ever promoted"


def state_with(*versions: str) -> MonitoringState:
    monitored = MonitoringState(
        drift=DriftSpec(10),
        quality_window=10,
        pending_capacity=100,
        label_history=1000,
        max_versions=4,
        label_horizon_s=30 * 86_400.0,
    )
    for version in versions:
        monitored.add_prediction(
            PredictionV3(
                event_id=uuid.uuid4(),
                scored_event_id=uuid.uuid4(),
                scored_event_time=T0,
                served_at=T0,
                entities={"user_id": "u-1", "merchant_id": "m-1"},
                model_name="fraud",
                model_version=version,
                features={"x": 1.0},
                score=0.5,
                threshold=0.5,
                decision="review",
            )
        )
    return monitored


def test_the_snapshot_leaves_silenced_versions_out() -> None:
    monitored = state_with("v0001", "v0002", "v0003")
    settings = SnapshotSettings(min_drift_rows=1, min_labels=1, min_positives=1)
    costs = problem_card().costs
    snapshot = compute_snapshot(monitored, {}, costs, settings, None, frozenset({"v0001"}))
    assert [v.version for v in snapshot.versions] == ["v0002", "v0003"]
    assert sorted(monitored.versions) == ["v0001", "v0002", "v0003"], "its windows stay, for a rollback"


def test_the_reference_book_reads_the_alias_history_of_a_real_registry(tmp_path: Path) -> None:
    clock = [T0]
    registry = ModelRegistry(tmp_path / "registry", clock=lambda: clock[0])
    for index in range(2):
        folder = tmp_path / f"model-{index}"
        folder.mkdir()
        (folder / "model.bst").write_bytes(b"not read by monitoring")
        lineage = Lineage(
            data_start=T0 - timedelta(days=60 - index),
            data_end=T0 - timedelta(days=30 - index),
            feature_service="fraud_model_v1",
            pipeline_run_id="test",
            code_version="test",
        )
        registry.register("fraud", folder, VersionMetadata(lineage=lineage))
    book = ReferenceBook(registry, "fraud", poll_s=0.0)
    assert book.production() == Production()
    registry.promote("fraud", "v0001")
    clock[0] = T0 + timedelta(minutes=10)
    registry.promote("fraud", "v0002")
    production = book.production()
    assert production.version == "v0002"
    assert production.data_end == (T0 - timedelta(days=29)).timestamp()
    assert production.departures == {"v0001": T0 + timedelta(minutes=10)}
    # A new book (a restarted exporter) reads the same history: the departure keeps its time.
    assert ReferenceBook(registry, "fraud", poll_s=0.0).production() == production
