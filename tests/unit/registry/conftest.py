"""Registries for the registry tests: on the local disk and on fsspec's in-memory filesystem."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest

from berg.registry import Lineage, ModelRegistry, VersionMetadata


def make_metadata(parent: str | None = None, **metrics: float) -> VersionMetadata:
    """Metadata of a version trained on January 2025."""
    return VersionMetadata(
        metrics=metrics or {"pr_auc": 0.81, "baseline_pr_auc": 0.32},
        reference_profile={"amount": {"bins": [0, 10, 100], "shares": [0.5, 0.5]}},
        lineage=Lineage(
            data_start=datetime(2025, 1, 1, tzinfo=UTC),
            data_end=datetime(2025, 2, 1, tzinfo=UTC),
            feature_service="fraud_model_v1",
            pipeline_run_id="run-42",
            code_version="0123abcd",
            parent_version=parent,
        ),
        params={"max_depth": 4, "eta": 0.1},
    )


@pytest.fixture
def metadata() -> VersionMetadata:
    return make_metadata()


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A fresh root on the process-wide in-memory filesystem, removed afterwards."""
    root = f"memory://registry-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture(params=["local", "memory"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> ModelRegistry:
    """The same tests on the embedded default (a folder) and on object-storage semantics (fsspec)."""
    if request.param == "local":
        return ModelRegistry(tmp_path / "registry")
    return ModelRegistry(request.getfixturevalue("memory_root"))
