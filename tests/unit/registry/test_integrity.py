"""A registered file is read back only if it is the file registered: size and sha256 against the metadata."""

from __future__ import annotations

import hashlib
import json

import fsspec
import pytest

from berg.registry import MODEL_PATH, IntegrityError, ModelRegistry, RegistryError, StoredFile, VersionMetadata
from berg.registry.integrity import check_file, measure

pytestmark = pytest.mark.unit

MODEL = b"booster-bytes-" * 1000
REPORT = b'{"pr_auc": 0.81}'


def _version_folder(registry: ModelRegistry, version: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of a version's folder, to change its files behind the registry's back."""
    fs, model_dir = fsspec.core.url_to_fs(registry.uri("fraud", version))
    return fs, model_dir.rsplit("/", 1)[0]


@pytest.fixture
def version(registry: ModelRegistry, metadata: VersionMetadata) -> str:
    return registry.register("fraud", {"model.bst": MODEL, "evaluation.json": REPORT}, metadata).version


def test_an_untouched_file_reads_back_whole(registry: ModelRegistry, version: str) -> None:
    assert registry.read_model_file("fraud", version) == MODEL
    assert registry.read_file("fraud", version, MODEL_PATH) == MODEL
    assert registry.read_file("fraud", version, "files/evaluation.json") == REPORT


@pytest.mark.parametrize(
    "replacement",
    [
        pytest.param(MODEL + b"appended", id="larger"),
        pytest.param(MODEL[:-1], id="smaller"),
        pytest.param(b"X" + MODEL[1:], id="same-size-other-bytes"),
    ],
)
def test_a_file_changed_after_registration_is_refused(
    registry: ModelRegistry, version: str, replacement: bytes
) -> None:
    fs, folder = _version_folder(registry, version)
    fs.pipe_file(f"{folder}/model/model.bst", replacement)

    with pytest.raises(IntegrityError) as refused:
        registry.read_model_file("fraud", version)

    error = refused.value
    registered, found = hashlib.sha256(MODEL).hexdigest(), hashlib.sha256(replacement).hexdigest()
    assert (error.model, error.version, error.path) == ("fraud", version, MODEL_PATH)
    assert (error.recorded.size_bytes, error.recorded.sha256) == (len(MODEL), registered)
    assert error.found is not None
    assert (error.found.size_bytes, error.found.sha256) == (len(replacement), found)
    message = str(error)
    for part in ("'fraud'", version, MODEL_PATH, registered, found, "changed after registration", "register"):
        assert part in message
    assert isinstance(error, RegistryError)  # callers that handle registry errors handle this one too


def test_a_deleted_file_is_refused(registry: ModelRegistry, version: str) -> None:
    fs, folder = _version_folder(registry, version)
    fs.rm(f"{folder}/model/model.bst")

    with pytest.raises(IntegrityError, match=r"model/model\.bst of model 'fraud' v0001 is missing") as refused:
        registry.read_model_file("fraud", version)
    assert refused.value.found is None


def test_an_extra_file_is_checked_too(registry: ModelRegistry, version: str) -> None:
    fs, folder = _version_folder(registry, version)
    fs.pipe_file(f"{folder}/files/evaluation.json", b'{"pr_auc": 0.99}')

    with pytest.raises(IntegrityError, match=r"files/evaluation\.json of model 'fraud' v0001"):
        registry.read_file("fraud", version, "files/evaluation.json")
    assert registry.read_model_file("fraud", version) == MODEL


def test_only_recorded_files_inside_the_version_are_read(registry: ModelRegistry, version: str) -> None:
    with pytest.raises(RegistryError, match=r"has no file 'files/other\.json'; its files: model/model\.bst"):
        registry.read_file("fraud", version, "files/other.json")
    # A metadata.json edited to name a file outside the version's folder is refused before anything is read.
    fs, folder = _version_folder(registry, version)
    record = json.loads(fs.cat_file(f"{folder}/metadata.json"))
    record["files"][0]["path"] = "files/../../../v0002/model/model.bst"
    fs.pipe_file(f"{folder}/metadata.json", json.dumps(record).encode())
    with pytest.raises(RegistryError, match="is not a valid file name"):
        registry.read_file("fraud", version, "files/../../../v0002/model/model.bst")


def test_an_unknown_version_is_a_registry_error_not_an_integrity_error(registry: ModelRegistry, version: str) -> None:
    with pytest.raises(RegistryError, match="has no version v0002") as refused:
        registry.read_model_file("fraud", "v0002")
    assert not isinstance(refused.value, IntegrityError)
    assert version == "v0001"


def test_measure_hashes_every_block_and_keeps_only_what_is_asked() -> None:
    blocks = [b"abc", b"defg", b"", b"hi"]
    whole = b"".join(blocks)

    described, kept = measure("model/model.bst", blocks, keep_bytes=5)

    assert described == StoredFile(
        path="model/model.bst", size_bytes=len(whole), sha256=hashlib.sha256(whole).hexdigest()
    )
    assert kept == b"abcde"
    assert measure("model/model.bst", blocks, keep_bytes=100)[1] == whole
    assert measure("model/model.bst", [])[0].sha256 == hashlib.sha256(b"").hexdigest()


def test_check_file_passes_the_recorded_file_and_names_both_digests_otherwise() -> None:
    recorded = StoredFile(path="model/model.bst", size_bytes=3, sha256=hashlib.sha256(b"abc").hexdigest())
    check_file("fraud", "v0001", "here", recorded, recorded.model_copy())

    other = StoredFile(path="model/model.bst", size_bytes=3, sha256=hashlib.sha256(b"abd").hexdigest())
    with pytest.raises(IntegrityError) as refused:
        check_file("fraud", "v0001", "file:///registry/x", recorded, other)
    assert recorded.sha256 in str(refused.value)
    assert other.sha256 in str(refused.value)
    assert "file:///registry/x" in str(refused.value)
