"""Which feature store to open: the Feast repo, its profile, and the values of the profile's ``${VARS}``.

Built where an application starts (a service's settings, the ``berg`` command, a
pipeline step) and passed down: the library reads no environment variable. Only
``feature_repo/berg_repo.py``, which Feast's own CLI imports, reads the environment,
as Feast does for the profile itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "CLUSTER_PROFILE",
    "EMBEDDED_PROFILE",
    "OFFLINE_ROOT_VARIABLE",
    "STATE_DIR_VARIABLE",
    "FeatureStoreConfig",
    "checkout_feature_repo",
    "ensure_state_folder",
    "offline_root_from",
]

EMBEDDED_PROFILE = "feature_store.yaml"
CLUSTER_PROFILE = "cluster/feature_store.yaml"

STATE_DIR_VARIABLE = "BERG_STATE_DIR"
"""The embedded profile's ``${VAR}``: its SQLite files live under ``<state dir>/feast``."""
OFFLINE_ROOT_VARIABLE = "BERG_FEAST_OFFLINE_ROOT"
"""Where the offline sources live: a local folder, or ``s3://bucket/prefix`` (cluster profile)."""


def checkout_feature_repo() -> Path:
    """``feature_repo/`` of this checkout (an image names its own copy in its settings)."""
    return Path(__file__).resolve().parents[3] / "feature_repo"


def offline_root_from(variables: Mapping[str, str]) -> str:
    """``BERG_FEAST_OFFLINE_ROOT``, else ``BERG_STATE_DIR/feast/offline``, from ``variables``.

    Raises:
        RuntimeError: when neither is given, saying what to set.
    """
    root = variables.get(OFFLINE_ROOT_VARIABLE)
    if root:
        return root.rstrip("/")
    state = variables.get(STATE_DIR_VARIABLE)
    if state:
        return str(Path(state).absolute() / "feast" / "offline")
    raise RuntimeError(
        f"set {STATE_DIR_VARIABLE} (e.g. `export {STATE_DIR_VARIABLE}=$PWD/.berg`, as the berg command does) "
        f"or {OFFLINE_ROOT_VARIABLE} before running Feast on feature_repo/"
    )


def ensure_state_folder(variables: Mapping[str, str]) -> None:
    """Create ``<BERG_STATE_DIR>/feast`` when ``variables`` name a state directory: the SQLite registry and
    online store live there, and SQLite creates files, not folders (``feast apply`` on a fresh checkout)."""
    state = variables.get(STATE_DIR_VARIABLE)
    if state:
        (Path(state) / "feast").mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class FeatureStoreConfig:
    """A profile of a Feast repo and the values its ``${VARS}`` stand for."""

    repo: Path
    """The Feast repo (``feature_repo/``): relative paths in the profile are resolved against it."""
    profile: str = EMBEDDED_PROFILE
    """The profile's yaml, relative to ``repo`` (or absolute: a mounted ConfigMap)."""
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)
    """``${NAME}`` in the profile -> its value (``BERG_STATE_DIR``, ``BERG_FEAST_REDIS``...). Left out of
    the repr: the cluster profile's values hold the registry's and Redis' credentials."""

    def __post_init__(self) -> None:
        # A copy behind a read-only view: the config stays what it was built as.
        object.__setattr__(self, "variables", MappingProxyType(dict(self.variables)))

    @classmethod
    def embedded(cls, state_dir: Path, repo: Path | None = None) -> FeatureStoreConfig:
        """The embedded profile over a state directory (SQLite registry and online store, local offline store)."""
        return cls(repo or checkout_feature_repo(), EMBEDDED_PROFILE, {STATE_DIR_VARIABLE: str(state_dir)})

    @property
    def profile_file(self) -> Path:
        return self.repo / self.profile

    @property
    def offline_root(self) -> str:
        """Where the offline sources live, from the variables (see :func:`offline_root_from`)."""
        return offline_root_from(self.variables)
