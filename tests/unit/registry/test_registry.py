"""The registry on the local disk and on fsspec's memory filesystem: versions, immutability, aliases."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest

from berg.registry import ModelRegistry, RegistryError, VersionMetadata
from tests.unit.registry.conftest import make_metadata

pytestmark = pytest.mark.unit


def test_register_get_versions_round_trip(registry: ModelRegistry, metadata: VersionMetadata) -> None:
    first = registry.register("fraud", {"model.bst": b"booster-1", "evaluation.json": b'{"pr_auc": 0.81}'}, metadata)
    second = registry.register("fraud", {"model.bst": b"booster-2"}, make_metadata(parent="v0001", pr_auc=0.84))

    assert (first.version, second.version) == ("v0001", "v0002")
    assert registry.get("fraud", "v0001") == first
    assert registry.get("fraud", "v0002") == second
    assert registry.versions("fraud") == [first, second]
    assert registry.models() == ["fraud"]
    assert first.model_name == "fraud"
    assert first.metrics == metadata.metrics
    assert first.reference_profile == metadata.reference_profile
    assert first.lineage == metadata.lineage
    assert first.params == metadata.params
    assert first.created_at.tzinfo is UTC
    assert first.model_file.path == "model/model.bst"
    assert first.model_file.sha256 == hashlib.sha256(b"booster-1").hexdigest()
    assert first.model_file.size_bytes == len(b"booster-1")
    assert [f.path for f in first.files] == ["files/evaluation.json"]
    assert second.lineage.parent_version == "v0001"
    assert registry.versions("unknown") == []


def test_a_folder_is_registered_with_its_extra_files_beside_the_model_folder(
    tmp_path: Path, metadata: VersionMetadata
) -> None:
    out = tmp_path / "out"
    (out / "reports").mkdir(parents=True)
    (out / "model.bst").write_bytes(b"booster")
    (out / "reports" / "evaluation.json").write_text("{}")
    (out / ".hidden").write_text("skipped")
    registry = ModelRegistry(tmp_path / "registry")

    version = registry.register("fraud", out, metadata)

    model_dir = registry.local_path("fraud", version.version)
    # KServe's xgbserver refuses a folder with more than one .bst/.json/.ubj file: model.bst is alone.
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.bst"]
    assert (model_dir / "model.bst").read_bytes() == b"booster"
    assert [f.path for f in version.files] == ["files/reports/evaluation.json"]
    assert (model_dir.parent / "files" / "reports" / "evaluation.json").read_text() == "{}"
    assert json.loads((model_dir.parent / "metadata.json").read_text())["version"] == "v0001"
    assert registry.uri("fraud", "v0001") == model_dir.as_uri()


def test_the_storage_uri_on_object_storage_is_the_model_folder(memory_root: str, metadata: VersionMetadata) -> None:
    registry = ModelRegistry(memory_root)
    registry.register("fraud", {"model.bst": b"booster", "evaluation.json": b"{}"}, metadata)

    uri = registry.uri("fraud", "v0001")

    assert uri.startswith("memory://")
    assert uri.endswith("/fraud/versions/v0001/model")
    fs, path = fsspec.core.url_to_fs(uri)
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)] == ["model.bst"]
    assert fs.cat_file(f"{path}/model.bst") == b"booster"
    with pytest.raises(RegistryError, match="not on the local disk"):
        registry.local_path("fraud", "v0001")


def test_a_version_is_never_written_twice(registry: ModelRegistry, metadata: VersionMetadata) -> None:
    registry.register("fraud", {"model.bst": b"original"}, metadata, version="v0007")

    with pytest.raises(RegistryError, match=r"already exists.*immutable"):
        registry.register("fraud", {"model.bst": b"impostor"}, metadata, version="v0007")

    assert registry.get("fraud", "v0007").model_file.sha256 == hashlib.sha256(b"original").hexdigest()
    # The counter continues after the highest id.
    assert registry.register("fraud", {"model.bst": b"next"}, metadata).version == "v0008"


def test_a_half_written_version_is_invisible_and_its_id_is_not_reused(
    tmp_path: Path, metadata: VersionMetadata
) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", {"model.bst": b"one"}, metadata)
    # A writer died: its files are there, metadata.json (the commit marker) is not.
    half = tmp_path / "fraud" / "versions" / "v0002" / "model"
    half.mkdir(parents=True)
    (half / "model.bst").write_bytes(b"partial")
    (tmp_path / ".staging" / "abc").mkdir(parents=True)

    assert [v.version for v in registry.versions("fraud")] == ["v0001"]
    with pytest.raises(RegistryError, match="has no version v0002"):
        registry.get("fraud", "v0002")
    with pytest.raises(RegistryError, match="has no version v0002"):
        registry.promote("fraud", "v0002")
    assert registry.register("fraud", {"model.bst": b"three"}, metadata).version == "v0003"
    assert registry.models() == ["fraud"]


def test_a_half_written_version_on_object_storage_is_invisible(memory_root: str, metadata: VersionMetadata) -> None:
    registry = ModelRegistry(memory_root)
    fs, root = fsspec.core.url_to_fs(memory_root)
    fs.pipe_file(f"{root}/fraud/versions/v0001/model/model.bst", b"partial")
    fs.pipe_file(f"{root}/other/versions/v0001/model/model.bst", b"partial")

    assert registry.versions("fraud") == []
    assert registry.models() == []
    with pytest.raises(RegistryError, match="no model named 'fraud'"):
        registry.get("fraud", "v0001")
    assert registry.register("fraud", {"model.bst": b"whole"}, metadata).version == "v0002"
    assert registry.models() == ["fraud"]


def test_promote_rollback_and_history(registry: ModelRegistry, metadata: VersionMetadata) -> None:
    for payload in (b"1", b"2", b"3"):
        registry.register("fraud", {"model.bst": payload}, metadata)
    assert registry.resolve("fraud", "production") is None
    assert registry.history("fraud", "production") == []

    registry.promote("fraud", "v0001", reason="first model")
    registry.promote("fraud", "v0002", reason="beats v0001")
    moved = registry.promote("fraud", "v0003", reason="beats v0002")
    assert (moved.version, moved.previous, moved.action) == ("v0003", "v0002", "promote")
    assert registry.resolve("fraud", "production") == registry.get("fraud", "v0003")

    # Rollbacks walk back through the promotions, they do not toggle between the last two.
    back = registry.rollback("fraud")
    assert (back.version, back.previous, back.action) == ("v0002", "v0001", "rollback")
    assert back.reason == "rollback from v0003"
    assert registry.rollback("fraud", reason="v0002 too").version == "v0001"
    with pytest.raises(RegistryError, match="no previous version to roll back to"):
        registry.rollback("fraud")
    assert registry.resolve("fraud", "production").version == "v0001"

    history = registry.history("fraud", "production")
    assert [(m.action, m.version, m.previous) for m in history] == [
        ("promote", "v0001", None),
        ("promote", "v0002", "v0001"),
        ("promote", "v0003", "v0002"),
        ("rollback", "v0002", "v0001"),
        ("rollback", "v0001", None),
    ]
    assert [m.reason for m in history][:3] == ["first model", "beats v0001", "beats v0002"]
    assert registry.aliases("fraud") == {"production": history[-1]}


def test_aliases_are_independent_and_promoting_the_current_version_moves_nothing(
    registry: ModelRegistry, metadata: VersionMetadata
) -> None:
    registry.register("fraud", {"model.bst": b"1"}, metadata)
    registry.register("fraud", {"model.bst": b"2"}, metadata)
    registry.promote("fraud", "v0001")
    registry.promote("fraud", "v0002", alias="staging")

    again = registry.promote("fraud", "v0001")

    assert again.version == "v0001"
    assert len(registry.history("fraud", "production")) == 1
    assert {alias: move.version for alias, move in registry.aliases("fraud").items()} == {
        "production": "v0001",
        "staging": "v0002",
    }


def test_promoting_a_missing_version_is_refused(registry: ModelRegistry, metadata: VersionMetadata) -> None:
    registry.register("fraud", {"model.bst": b"1"}, metadata)

    with pytest.raises(RegistryError, match=r"has no version v0009; its versions: v0001"):
        registry.promote("fraud", "v0009")
    with pytest.raises(RegistryError, match=r"no model named 'other'.*models here: fraud"):
        registry.promote("other", "v0001")
    with pytest.raises(RegistryError, match="not a version id"):
        registry.promote("fraud", "latest")
    assert registry.resolve("fraud", "production") is None


def test_rollback_of_an_alias_never_set_is_refused(registry: ModelRegistry, metadata: VersionMetadata) -> None:
    registry.register("fraud", {"model.bst": b"1"}, metadata)

    with pytest.raises(RegistryError, match=r"was never set.*berg models promote fraud VERSION"):
        registry.rollback("fraud")
    with pytest.raises(RegistryError, match="no model named 'other'"):
        registry.rollback("other")


def test_a_rollback_only_from_a_version_steps_back_once(registry: ModelRegistry, metadata: VersionMetadata) -> None:
    for _ in range(3):
        registry.register("fraud", {"model.bst": b"1"}, metadata)
    for version in ("v0001", "v0002", "v0003"):
        registry.promote("fraud", version)

    first = registry.rollback("fraud", "production", "watch: PSI", only_from="v0003")
    with pytest.raises(RegistryError, match="no longer names v0003"):
        registry.rollback("fraud", "production", "a second watcher", only_from="v0003")

    assert first.version == "v0002"
    assert [move.version for move in registry.history("fraud", "production")] == ["v0001", "v0002", "v0003", "v0002"]


def test_the_alias_pointer_is_repaired_when_a_mover_died_before_writing_it(
    tmp_path: Path, metadata: VersionMetadata
) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", {"model.bst": b"1"}, metadata)
    registry.register("fraud", {"model.bst": b"2"}, metadata)
    registry.promote("fraud", "v0001")
    moved = registry.promote("fraud", "v0002")
    pointer = tmp_path / "fraud" / "aliases" / "production"
    stale = registry.history("fraud", "production")[0]
    pointer.write_text(stale.model_dump_json())  # as if the mover died after the history write

    assert registry.promote("fraud", "v0002") == moved
    assert registry.alias("fraud", "production") == moved


@pytest.mark.parametrize(
    ("artifacts", "message"),
    [
        ({"weights.bin": b"x"}, r"no model.bst among the files to register \(found: weights.bin\)"),
        ({"model.bst": b"x", "../escape.txt": b"x"}, "not a valid file name"),
        ({"model.bst": b"x", "/etc/passwd": b"x"}, "not a valid file name"),
        ({"model.bst": Path("/nonexistent/model.bst")}, "is not a file"),
    ],
)
def test_what_cannot_be_registered_is_refused_before_anything_is_written(
    registry: ModelRegistry, metadata: VersionMetadata, artifacts: dict[str, bytes | Path], message: str
) -> None:
    with pytest.raises(RegistryError, match=message):
        registry.register("fraud", artifacts, metadata)
    assert registry.versions("fraud") == []
    assert registry.register("fraud", {"model.bst": b"x"}, metadata).version == "v0001"


@pytest.mark.parametrize("name", ["", "Fraud", "fraud/x", "..", "-fraud", "a" * 64])
def test_bad_model_names_are_refused(registry: ModelRegistry, metadata: VersionMetadata, name: str) -> None:
    with pytest.raises(RegistryError, match="not a valid model name"):
        registry.register(name, {"model.bst": b"x"}, metadata)


def test_bad_aliases_are_refused(registry: ModelRegistry, metadata: VersionMetadata) -> None:
    registry.register("fraud", {"model.bst": b"x"}, metadata)
    with pytest.raises(RegistryError, match="not a valid alias"):
        registry.promote("fraud", "v0001", alias="../production")


def test_a_folder_without_a_model_is_refused(tmp_path: Path, metadata: VersionMetadata) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(RegistryError, match="is not a folder"):
        registry.register("fraud", tmp_path / "missing", metadata)


def test_the_clock_stamps_versions_and_moves(tmp_path: Path, metadata: VersionMetadata) -> None:
    moment = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    registry = ModelRegistry(tmp_path, clock=lambda: moment)

    registry.register("fraud", {"model.bst": b"x"}, metadata)

    assert registry.get("fraud", "v0001").created_at == moment
    assert registry.promote("fraud", "v0001").moved_at == moment


def test_corrupt_metadata_is_reported_with_its_location(tmp_path: Path, metadata: VersionMetadata) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", {"model.bst": b"x"}, metadata)
    (tmp_path / "fraud" / "versions" / "v0001" / "metadata.json").write_text("{}")

    with pytest.raises(RegistryError, match=r"metadata of fraud v0001 \(file://.*metadata.json\) is not valid"):
        registry.get("fraud", "v0001")


def test_a_file_uri_is_the_local_registry(tmp_path: Path, metadata: VersionMetadata) -> None:
    ModelRegistry(tmp_path).register("fraud", {"model.bst": b"x"}, metadata)

    assert [v.version for v in ModelRegistry(tmp_path.as_uri()).versions("fraud")] == ["v0001"]
    assert [v.version for v in ModelRegistry(str(tmp_path)).versions("fraud")] == ["v0001"]
