"""What a model version records about itself: ``metadata.json``.

The caller describes a new version with :class:`VersionMetadata` (metrics,
reference profile, lineage, params); the registry adds the id, the time and the
files it stored, and writes the result, a :class:`ModelVersion`, as the
version's ``metadata.json``. Like the event contracts, these models refuse
unknown fields and NaN, and a format change is a new ``format_version``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from berg.contracts._types import FiniteFloat, UtcDatetime

__all__ = ["Lineage", "ModelVersion", "StoredFile", "VersionMetadata"]

_CONFIG = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Lineage(BaseModel):
    """Where a version came from: enough to rebuild it and to judge it later."""

    model_config = _CONFIG

    data_start: UtcDatetime
    """Start of the training data window (event time, inclusive)."""
    data_end: UtcDatetime
    """End of the training data window (event time, exclusive)."""
    feature_service: str = Field(min_length=1, max_length=200)
    """The Feast feature service the training set was built from (the use case's, e.g. ``my_model_v1``)."""
    pipeline_run_id: str = Field(min_length=1, max_length=200)
    """The pipeline run that trained it (Kubeflow run id, or the local runner's)."""
    code_version: str = Field(min_length=1, max_length=200)
    """Git commit sha of the training code, or the package version when there is no checkout."""
    parent_version: str | None = Field(default=None, max_length=20)
    """The production champion when it was trained (what it was compared with), or None for the first."""

    @model_validator(mode="after")
    def _window_is_ordered(self) -> Lineage:
        if self.data_end <= self.data_start:
            raise ValueError(f"data_end ({self.data_end}) must be after data_start ({self.data_start})")
        return self


class VersionMetadata(BaseModel):
    """What the caller of :meth:`~berg.registry.ModelRegistry.register` says about a new version."""

    model_config = _CONFIG

    metrics: dict[str, FiniteFloat] = Field(default_factory=dict)
    """Evaluation metrics, including those of the baseline and champion it was compared with."""
    reference_profile: dict[str, JsonValue] = Field(default_factory=dict)
    """Profile of its training features and predictions, the reference for drift (opaque here)."""
    lineage: Lineage
    params: dict[str, JsonValue] = Field(default_factory=dict)
    """Training parameters (XGBoost params, number of rounds, ...)."""


class StoredFile(BaseModel):
    """A file of a version, with what it takes to check it was not altered."""

    model_config = _CONFIG

    path: str
    """Relative to the version's folder, e.g. ``model/model.bst``, ``files/evaluation.json``."""
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ModelVersion(VersionMetadata):
    """One immutable version of a model: the content of its ``metadata.json``."""

    format_version: Literal[1] = 1
    """Version of this metadata format."""
    model_name: str
    version: str
    """``v0001``, ``v0002``... (see :mod:`berg.registry.versions`)."""
    created_at: UtcDatetime
    model_file: StoredFile
    """``model/model.bst``: the folder a KServe ``storageUri`` points at."""
    files: list[StoredFile] = Field(default_factory=list)
    """Extra files (evaluation report, ...) under ``files/``."""
