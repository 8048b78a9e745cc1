"""Pure parts of the registry: version ids, names, the metadata contract and alias moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from berg.registry import AliasMove, Lineage
from berg.registry.aliases import promotion, rollback
from berg.registry.layout import ModelLayout, check_extra_file_name, history_sequence
from berg.registry.versions import format_version, is_version, next_version, version_number

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def test_version_ids_count_up_and_sort_by_number() -> None:
    assert next_version([]) == "v0001"
    assert next_version(["v0001", "v0009", ".tmp", "notes"]) == "v0010"
    assert next_version(["v9999"]) == "v10000"
    assert sorted(["v10000", "v9999", "v0002"], key=version_number) == ["v0002", "v9999", "v10000"]
    assert format_version(12) == "v0012"
    assert not is_version("v12")
    assert not is_version("0012")
    with pytest.raises(ValueError, match="not a version id"):
        version_number("latest")
    with pytest.raises(ValueError, match="start at 1"):
        format_version(0)


def test_layout_keys() -> None:
    layout = ModelLayout("fraud")
    assert layout.model_dir("v0001") == "fraud/versions/v0001/model"
    assert layout.model_file("v0001") == "fraud/versions/v0001/model/model.bst"
    assert layout.metadata("v0001") == "fraud/versions/v0001/metadata.json"
    assert layout.extra_file("v0001", "a/b.json") == "fraud/versions/v0001/files/a/b.json"
    assert layout.alias("production") == "fraud/aliases/production"
    assert layout.alias_move("production", 12) == "fraud/alias-history/production/00000012.json"
    assert history_sequence("00000012.json") == 12
    assert history_sequence(".00000012.json.tmp") is None
    assert check_extra_file_name("./a//b.json") == "a/b.json"


def test_lineage_is_utc_and_its_window_ordered() -> None:
    plus_two = timezone(timedelta(hours=2))
    lineage = Lineage(
        data_start=datetime(2025, 1, 1, 2, tzinfo=plus_two),
        data_end=datetime(2025, 2, 1, tzinfo=UTC),
        feature_service="fraud_model_v1",
        pipeline_run_id="run",
        code_version="0.1.0",
    )
    assert lineage.data_start == datetime(2025, 1, 1, tzinfo=UTC)
    assert lineage.data_start.tzinfo is UTC
    with pytest.raises(ValidationError, match="must be after data_start"):
        Lineage(
            data_start=datetime(2025, 2, 1, tzinfo=UTC),
            data_end=datetime(2025, 1, 1, tzinfo=UTC),
            feature_service="f",
            pipeline_run_id="r",
            code_version="c",
        )
    with pytest.raises(ValidationError, match="timezone"):
        Lineage(
            data_start=datetime(2025, 1, 1),  # naive
            data_end=datetime(2025, 2, 1, tzinfo=UTC),
            feature_service="f",
            pipeline_run_id="r",
            code_version="c",
        )


def _move(version: str, previous: str | None, action: str = "promote") -> AliasMove:
    return AliasMove.model_validate({"version": version, "moved_at": NOW, "previous": previous, "action": action})


def test_promotion_records_the_replaced_version_and_is_a_no_op_when_already_there() -> None:
    assert promotion(None, "v0001", "first", NOW) == AliasMove(
        version="v0001", moved_at=NOW, previous=None, reason="first", action="promote"
    )
    assert promotion(_move("v0001", None), "v0002", "", NOW).previous == "v0001"
    assert promotion(_move("v0001", None), "v0001", "", NOW) is None


def test_rollback_walks_back_through_promotions() -> None:
    history = [_move("v0001", None), _move("v0002", "v0001"), _move("v0003", "v0002")]
    first = rollback(history, "", NOW)
    assert first is not None
    assert (first.version, first.previous, first.reason) == ("v0002", "v0001", "rollback from v0003")
    second = rollback([*history, first], "bad too", NOW)
    assert second is not None
    assert (second.version, second.previous, second.reason) == ("v0001", None, "bad too")
    assert rollback([*history, first, second], "", NOW) is None
    assert rollback([], "", NOW) is None


def test_rollback_after_a_rollback_and_a_new_promotion() -> None:
    history = [_move("v0001", None), _move("v0002", "v0001"), _move("v0001", None, "rollback"), _move("v0003", "v0001")]
    back = rollback(history, "", NOW)
    assert back is not None
    assert (back.version, back.previous) == ("v0001", None)
