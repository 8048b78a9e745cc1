"""Where each object of the registry lives, as keys relative to the registry root (pure, no I/O).

See the package docstring (:mod:`berg.registry`) for the whole layout. Names
that become path segments are checked here, so no model, alias or file name can
climb out of its folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from berg.registry.errors import RegistryError

__all__ = [
    "METADATA_FILE",
    "MODEL_FILE",
    "MODEL_PATH",
    "ModelLayout",
    "check_alias",
    "check_extra_file_name",
    "check_model_name",
    "history_sequence",
    "is_model_name",
]

MODEL_FILE = "model.bst"
"""The XGBoost model file: the only file in a version's ``model/`` folder, as KServe's xgbserver requires."""
MODEL_PATH = f"model/{MODEL_FILE}"
"""The model file's path relative to its version's folder, as :class:`~berg.registry.StoredFile` records it."""
EXTRA_FOLDER = "files"
"""The folder of a version's extra files (evaluation report, ...), beside ``model/``."""
METADATA_FILE = "metadata.json"
"""A version's metadata; written last, so its presence is what makes the version exist."""

_MODEL_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
_ALIAS = re.compile(r"^[a-z](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
_FILE_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HISTORY_FILE = re.compile(r"^(\d{8})\.json$")


def is_model_name(name: str) -> bool:
    """Whether ``name`` is a valid model name (see :func:`check_model_name`)."""
    return _MODEL_NAME.fullmatch(name) is not None


def check_model_name(name: str) -> str:
    """``name`` if it is a valid model name (lower case, digits, ``-``, ``_``; at most 63 characters)."""
    if not is_model_name(name):
        raise RegistryError(
            f"{name!r} is not a valid model name: use 1 to 63 lower-case letters, digits, '-' or '_', "
            "starting and ending with a letter or digit (e.g. 'my-model')"
        )
    return name


def check_alias(alias: str) -> str:
    """``alias`` if it is a valid alias name (e.g. ``production``, ``staging``)."""
    if _ALIAS.fullmatch(alias) is None:
        raise RegistryError(
            f"{alias!r} is not a valid alias: use 1 to 63 lower-case letters, digits, '-' or '_', "
            "starting with a letter (e.g. 'production')"
        )
    return alias


def check_extra_file_name(name: str) -> str:
    """``name`` as a normalised relative POSIX path if it is safe to store beside a version.

    Every segment starts with a letter, digit or ``_`` (so no ``..`` and no hidden files).
    """
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or not all(_FILE_SEGMENT.fullmatch(part) for part in path.parts):
        raise RegistryError(
            f"{name!r} is not a valid file name for a model version: use a relative path whose parts are "
            "letters, digits, '.', '-' or '_' and do not start with '.' (e.g. 'reports/evaluation.json')"
        )
    return path.as_posix()


def history_sequence(file_name: str) -> int | None:
    """The move number of an alias history file name (``00000012.json`` -> 12), or None for other names."""
    match = _HISTORY_FILE.fullmatch(file_name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class ModelLayout:
    """The keys of one model's objects, relative to the registry root."""

    name: str

    def __post_init__(self) -> None:
        check_model_name(self.name)

    @property
    def versions(self) -> str:
        return f"{self.name}/versions"

    def version(self, version: str) -> str:
        """A version's folder."""
        return f"{self.versions}/{version}"

    def model_dir(self, version: str) -> str:
        """The folder a KServe ``storageUri`` points at: ``model.bst`` and nothing else."""
        return f"{self.version(version)}/model"

    def model_file(self, version: str) -> str:
        return f"{self.model_dir(version)}/{MODEL_FILE}"

    def extra_file(self, version: str, name: str) -> str:
        """An extra file of a version (evaluation report, ...), kept out of the model folder."""
        return f"{self.version(version)}/{EXTRA_FOLDER}/{check_extra_file_name(name)}"

    def stored_file(self, version: str, path: str) -> str:
        """The key of a file given as its version's metadata records it (``model/model.bst``, ``files/<name>``).

        The path is checked like a name at registration: a metadata file edited to point elsewhere cannot
        make a reader climb out of the version's folder.
        """
        if path == MODEL_PATH:
            return self.model_file(version)
        folder, _, name = path.partition("/")
        if folder != EXTRA_FOLDER or not name:
            raise RegistryError(
                f"{path!r} is not a file of a model version: they are {MODEL_PATH!r} and {EXTRA_FOLDER}/<name>"
            )
        return self.extra_file(version, name)

    def metadata(self, version: str) -> str:
        return f"{self.version(version)}/{METADATA_FILE}"

    @property
    def claims(self) -> str:
        """Reservations of version ids, one empty-ish object per id, created exclusively."""
        return f"{self.name}/claims"

    def claim(self, version: str) -> str:
        return f"{self.claims}/{version}"

    @property
    def aliases(self) -> str:
        return f"{self.name}/aliases"

    def alias(self, alias: str) -> str:
        """The alias pointer: the JSON of its latest move; one atomic write per move."""
        return f"{self.aliases}/{check_alias(alias)}"

    def alias_history(self, alias: str) -> str:
        """One file per move of the alias, created exclusively, never rewritten."""
        return f"{self.name}/alias-history/{check_alias(alias)}"

    def alias_move(self, alias: str, sequence: int) -> str:
        return f"{self.alias_history(alias)}/{sequence:08d}.json"

    @property
    def rollouts(self) -> str:
        """One folder per version with rollout events (:mod:`berg.registry.rollout`)."""
        return f"{self.name}/rollout"

    def rollout_history(self, version: str) -> str:
        """One file per rollout event of a version, created exclusively, never rewritten."""
        return f"{self.rollouts}/{version}"

    def rollout_event(self, version: str, sequence: int) -> str:
        return f"{self.rollout_history(version)}/{sequence:08d}.json"
