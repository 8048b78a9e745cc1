"""The model registry client: register versions, read them, move aliases (see :mod:`berg.registry`)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from berg.registry.aliases import AliasMove, clearing, promotion, rollback
from berg.registry.backends import open_store
from berg.registry.errors import RegistryError
from berg.registry.integrity import check_file, measure
from berg.registry.layout import (
    EXTRA_FOLDER,
    METADATA_FILE,
    MODEL_FILE,
    MODEL_PATH,
    ModelLayout,
    check_alias,
    check_extra_file_name,
    history_sequence,
    is_model_name,
)
from berg.registry.metadata import ModelVersion, StoredFile, VersionMetadata
from berg.registry.rollout import RolloutAction, RolloutEvent, stage_of
from berg.registry.storage import FileSource, RegistryStore
from berg.registry.versions import format_version, is_version, next_version, version_number

__all__ = ["Artifacts", "ModelRegistry"]

Artifacts = Path | Mapping[str, FileSource]
"""A folder holding ``model.bst`` (and any extra files), or file names mapped to local files or bytes."""

_MAX_CLAIM_ATTEMPTS = 1000
_MAX_MOVE_ATTEMPTS = 20
_BLOCK_BYTES = 1 << 20


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _blocks(handle: BinaryIO) -> Iterator[bytes]:
    while block := handle.read(_BLOCK_BYTES):
        yield block


def _describe(path: str, source: FileSource) -> StoredFile:
    if isinstance(source, bytes):
        return measure(path, [source])[0]
    with source.open("rb") as handle:
        return measure(path, _blocks(handle))[0]


def _collect(artifacts: Artifacts) -> tuple[FileSource, dict[str, FileSource]]:
    """The model file and the extra files (by normalised name) of what the caller passed."""
    if isinstance(artifacts, Path):
        if not artifacts.is_dir():
            raise RegistryError(
                f"{artifacts} is not a folder: pass the folder that holds {MODEL_FILE}, "
                "or a mapping of file names to paths or bytes"
            )
        sources: dict[str, FileSource] = {
            path.relative_to(artifacts).as_posix(): path
            for path in sorted(artifacts.rglob("*"))
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(artifacts).parts)
        }
    else:
        sources = dict(artifacts)
    if MODEL_FILE not in sources:
        found = ", ".join(sorted(sources)) or "none"
        raise RegistryError(
            f"no {MODEL_FILE} among the files to register (found: {found}); "
            f"save the booster with booster.save_model('{MODEL_FILE}')"
        )
    model = sources.pop(MODEL_FILE)
    for source in [model, *sources.values()]:
        if isinstance(source, Path) and not source.is_file():
            raise RegistryError(f"{source} is not a file; nothing was registered")
    return model, {check_extra_file_name(name): source for name, source in sources.items()}


class ModelRegistry:
    """Versions of models and their aliases, in a folder or under an object-storage prefix.

    Example:
        >>> registry = ModelRegistry(".berg/registry")
        >>> version = registry.register("my-model", Path("out/model"), metadata)
        >>> registry.promote("my-model", version.version, reason="beats champion on PR-AUC")
        >>> registry.uri("my-model", registry.resolve("my-model", "production").version)  # KServe storageUri

    Args:
        root_uri: a local path (the embedded default) or any URI fsspec opens (``s3://bucket/registry``).
        clock: the time stamped on versions and alias moves (UTC).
    """

    def __init__(self, root_uri: str | Path, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._store: RegistryStore = open_store(root_uri)
        self._clock = clock

    @property
    def root_uri(self) -> str:
        """Where the registry lives."""
        return self._store.root_uri

    # Versions

    def register(
        self, name: str, artifacts: Artifacts, metadata: VersionMetadata, *, version: str | None = None
    ) -> ModelVersion:
        """Store a new immutable version of model ``name`` and return its metadata.

        Args:
            name: the model, e.g. ``my-model``.
            artifacts: a folder holding ``model.bst`` and any extra files (evaluation report, ...),
                or a mapping of file names to local paths or bytes; ``model.bst`` is required.
            metadata: metrics, reference profile, lineage and params.
            version: a specific id (``v0042``); by default the next free one.

        Raises:
            RegistryError: no ``model.bst``, a bad name, or ``version`` exists already (versions are immutable).
        """
        layout = ModelLayout(name)
        model, extras = _collect(artifacts)
        files: dict[str, FileSource] = {MODEL_PATH: model}
        files.update({f"{EXTRA_FOLDER}/{extra}": source for extra, source in extras.items()})
        described = {path: _describe(path, source) for path, source in files.items()}
        claimed = self._claim(layout, version)
        record = ModelVersion.model_validate(
            {
                **metadata.model_dump(),
                "model_name": name,
                "version": claimed,
                "created_at": self._clock(),
                "model_file": described.pop(MODEL_PATH),
                "files": list(described.values()),
            }
        )
        try:
            self._store.publish(
                layout.version(claimed), files, METADATA_FILE, record.model_dump_json(indent=2).encode()
            )
        except FileExistsError:
            raise RegistryError(
                f"version {claimed} of model {name!r} already exists; versions are immutable: "
                "register a new version instead"
            ) from None
        return record

    def _claim(self, layout: ModelLayout, version: str | None) -> str:
        claim = json.dumps(
            {"claimed_at": self._clock().isoformat(), "host": socket.gethostname(), "pid": os.getpid()}
        ).encode()
        if version is not None:
            self._check_version(version)
            if self._store.exists(layout.metadata(version)) or not self._store.create(layout.claim(version), claim):
                raise RegistryError(
                    f"version {version} of model {layout.name!r} already exists or is being written; versions are "
                    "immutable: register without a version id to get the next free one"
                )
            return version
        taken = [*self._store.list(layout.claims), *self._store.list(layout.versions)]
        first = version_number(next_version(taken))
        for number in range(first, first + _MAX_CLAIM_ATTEMPTS):
            if self._store.create(layout.claim(format_version(number)), claim):
                return format_version(number)
        raise RegistryError(
            f"could not reserve a version id for model {layout.name!r} in {_MAX_CLAIM_ATTEMPTS} attempts "
            "(other writers took them); try again"
        )

    @staticmethod
    def _check_version(version: str) -> None:
        if not is_version(version):
            raise RegistryError(f"{version!r} is not a version id: they look like v0001, v0002, ...")

    def get(self, name: str, version: str) -> ModelVersion:
        """The metadata of one version.

        Raises:
            RegistryError: the model has no such version (a version still being written does not exist).
        """
        layout = ModelLayout(name)
        self._check_version(version)
        try:
            data = self._store.read(layout.metadata(version))
        except FileNotFoundError:
            known = [v.version for v in self.versions(name)]
            if not known:
                raise RegistryError(self._unknown_model(name)) from None
            raise RegistryError(
                f"model {name!r} has no version {version}; its versions: {', '.join(known)} "
                f"(`berg models show {name}` lists them)"
            ) from None
        return self._parse_version(layout, version, data)

    def _parse_version(self, layout: ModelLayout, version: str, data: bytes) -> ModelVersion:
        try:
            return ModelVersion.model_validate_json(data)
        except ValidationError as error:
            raise RegistryError(
                f"the metadata of {layout.name} {version} ({self._store.uri(layout.metadata(version))}) "
                f"is not valid: {error.error_count()} problem(s), first: {error.errors()[0]['msg']}"
            ) from None

    def versions(self, name: str) -> list[ModelVersion]:
        """Every published version of ``name``, oldest first; empty for an unknown model."""
        layout = ModelLayout(name)
        ids = sorted((v for v in self._store.list(layout.versions) if is_version(v)), key=version_number)
        found = []
        for version in ids:
            try:
                data = self._store.read(layout.metadata(version))
            except FileNotFoundError:
                continue  # not published (yet): it does not exist
            found.append(self._parse_version(layout, version, data))
        return found

    def models(self) -> list[str]:
        """Names of the models with at least one published version, sorted."""
        return [name for name in self._store.list("") if is_model_name(name) and self._has_versions(name)]

    def _has_versions(self, name: str) -> bool:
        layout = ModelLayout(name)
        ids = sorted((v for v in self._store.list(layout.versions) if is_version(v)), key=version_number)
        return any(self._store.exists(layout.metadata(version)) for version in reversed(ids))

    def read_model_file(self, name: str, version: str) -> bytes:
        """The bytes of a version's ``model.bst``, checked against what was registered (see :meth:`read_file`).

        Raises:
            IntegrityError: the file is missing, or differs from what was registered: it is not returned.
            RegistryError: the version does not exist.
        """
        return self.read_file(name, version, MODEL_PATH)

    def read_file(self, name: str, version: str, path: str) -> bytes:
        """The bytes of one file of a version, checked against the size and sha256 recorded at registration.

        Anything that can write the registry's storage can replace a file under a registered version; a
        reader that loads a registered file through here refuses such a file instead of using it. The file
        is read once, hashed block by block; a file larger than recorded is hashed to its end but not held.

        Args:
            name: the model.
            version: the version id.
            path: the file as the version's metadata records it: ``model/model.bst``, ``files/evaluation.json``.

        Raises:
            IntegrityError: the file is missing, or its size or sha256 differ from the record (a
                :class:`RegistryError` whose message names both digests and the fix).
            RegistryError: the version does not exist, or records no such file.
        """
        record = self.get(name, version)
        stored = [record.model_file, *record.files]
        recorded = next((file for file in stored if file.path == path), None)
        if recorded is None:
            raise RegistryError(
                f"model {name!r} {version} has no file {path!r}; its files: {', '.join(f.path for f in stored)}"
            )
        key = ModelLayout(name).stored_file(version, path)
        data = b""
        try:
            with self._store.open_read(key) as handle:
                found, data = measure(path, _blocks(handle), keep_bytes=recorded.size_bytes)
        except FileNotFoundError:
            found = None
        check_file(name, version, self._store.uri(key), recorded, found)
        return data

    def uri(self, name: str, version: str) -> str:
        """The KServe ``storageUri`` of a version: its ``model/`` folder, which holds ``model.bst`` alone.

        Whatever reads the folder this way gets no check of the file; :meth:`read_model_file` checks it.
        """
        self.get(name, version)
        return self._store.uri(ModelLayout(name).model_dir(version))

    def local_path(self, name: str, version: str) -> Path:
        """The version's ``model/`` folder on the local disk (``model.bst`` is inside).

        Whatever reads the file this way gets no check of it; :meth:`read_model_file` checks it.

        Raises:
            RegistryError: the version does not exist, or the registry is not on the local disk.
        """
        self.get(name, version)
        path = self._store.local_path(ModelLayout(name).model_dir(version))
        if path is None:
            raise RegistryError(
                f"the registry at {self.root_uri} is not on the local disk; use uri() and download the folder"
            )
        return path

    # Aliases

    def alias(self, name: str, alias: str) -> AliasMove | None:
        """The latest move of ``alias`` (which version it names), or None when it is not set (never, or cleared)."""
        key = ModelLayout(name).alias(alias)
        try:
            data = self._store.read(key)
        except FileNotFoundError:
            return None
        move = AliasMove.model_validate_json(data)
        return move if move.is_set else None

    def _pointer(self, layout: ModelLayout, alias: str) -> AliasMove | None:
        """The alias pointer as written, a ``clear`` move included."""
        try:
            return AliasMove.model_validate_json(self._store.read(layout.alias(alias)))
        except FileNotFoundError:
            return None

    def aliases(self, name: str) -> dict[str, AliasMove]:
        """Every alias of ``name`` with its latest move."""
        layout = ModelLayout(name)
        found = {}
        for alias in self._store.list(layout.aliases):
            if alias.startswith("."):
                continue  # a pointer being written
            move = self.alias(name, alias)
            if move is not None:
                found[alias] = move
        return found

    def resolve(self, name: str, alias: str) -> ModelVersion | None:
        """The version ``alias`` names (e.g. the ``production`` champion), or None when it was never set."""
        move = self.alias(name, alias)
        return None if move is None else self.get(name, move.version)

    def history(self, name: str, alias: str) -> list[AliasMove]:
        """Every move of ``alias``, oldest first."""
        layout = ModelLayout(name)
        return [self._read_move(layout, alias, sequence) for sequence in self._move_sequences(layout, alias)]

    def _move_sequences(self, layout: ModelLayout, alias: str) -> list[int]:
        names = self._store.list(layout.alias_history(alias))
        return sorted(s for s in (history_sequence(n) for n in names) if s is not None)

    def _read_move(self, layout: ModelLayout, alias: str, sequence: int) -> AliasMove:
        return AliasMove.model_validate_json(self._store.read(layout.alias_move(alias, sequence)))

    def promote(self, name: str, version: str, alias: str = "production", reason: str = "") -> AliasMove:
        """Point ``alias`` at ``version``; a no-op when it already does. Returns the alias's latest move.

        Raises:
            RegistryError: the version does not exist.
        """
        check_alias(alias)
        self.get(name, version)
        return self._move(
            ModelLayout(name),
            alias,
            lambda history: promotion(history[-1] if history else None, version, reason, self._clock()),
            whole_history=False,
        )

    def rollback(
        self, name: str, alias: str = "production", reason: str = "", *, only_from: str | None = None
    ) -> AliasMove:
        """Point ``alias`` back at its ``previous`` version. Returns the move.

        Args:
            only_from: roll back only while the alias names this version (checked again on a race), so two
                writers that saw the same bad version step back once, not twice.

        Raises:
            RegistryError: the alias was never set, has no previous version, or no longer names ``only_from``.
        """
        check_alias(alias)
        layout = ModelLayout(name)

        def decide(history: Sequence[AliasMove]) -> AliasMove:
            if not history:
                if not self.versions(name):
                    raise RegistryError(self._unknown_model(name))
                raise RegistryError(
                    f"alias {alias!r} of model {name!r} was never set, so there is nothing to roll back; "
                    f"`berg models promote {name} VERSION --alias {alias}` sets it"
                )
            current = history[-1]
            if only_from is not None and (current.version != only_from or not current.is_set):
                raise RegistryError(
                    f"alias {alias!r} of model {name!r} no longer names {only_from} ({current.action} "
                    f"{current.version}); nothing rolled back"
                )
            move = rollback(history, reason, self._clock())
            if move is None:
                raise RegistryError(
                    f"alias {alias!r} of model {name!r} points at {history[-1].version} and has no previous "
                    f"version to roll back to; `berg models promote {name} VERSION --alias {alias}` moves it"
                )
            return move

        return self._move(layout, alias, decide, whole_history=True)

    def clear(self, name: str, alias: str, reason: str = "") -> AliasMove | None:
        """Unset ``alias`` (readers see none; the history keeps the move); None when it was not set."""
        check_alias(alias)
        layout = ModelLayout(name)
        cleared: list[AliasMove] = []

        def decide(history: Sequence[AliasMove]) -> AliasMove | None:
            move = clearing(history[-1] if history else None, reason, self._clock())
            if move is not None:
                cleared.append(move)
            return move

        if not self._move_sequences(layout, alias):
            return None
        last = self._move(layout, alias, decide, whole_history=False)
        return last if cleared and last is cleared[-1] else None

    # Rollouts (see berg.registry.rollout)

    def rollout_history(self, name: str, version: str) -> list[RolloutEvent]:
        """Every rollout event of ``version``, oldest first; empty when it was never a candidate."""
        layout = ModelLayout(name)
        self._check_version(version)
        names = self._store.list(layout.rollout_history(version))
        sequences = sorted(s for s in (history_sequence(n) for n in names) if s is not None)
        return [
            RolloutEvent.model_validate_json(self._store.read(layout.rollout_event(version, sequence)))
            for sequence in sequences
        ]

    def rollout_versions(self, name: str) -> list[str]:
        """The versions of ``name`` with rollout events, oldest first."""
        found = [v for v in self._store.list(ModelLayout(name).rollouts) if is_version(v)]
        return sorted(found, key=version_number)

    def record_rollout(
        self,
        name: str,
        version: str,
        action: RolloutAction,
        *,
        actor: str,
        reason: str = "",
        policy: str = "",
        details: Mapping[str, object] | None = None,
        after: frozenset[str | None] | None = None,
    ) -> RolloutEvent:
        """Append one step to ``version``'s rollout history (exclusive create: concurrent writers never share a slot).

        Args:
            after: the actions the last recorded step must be one of (None in it: no step yet); checked again
                if another writer took the slot first, so e.g. only one of an approval and a rejection lands.

        Raises:
            RegistryError: the version does not exist, or its last step is not one of ``after``.
        """
        self.get(name, version)
        layout = ModelLayout(name)
        for _ in range(_MAX_MOVE_ATTEMPTS):
            history = self.rollout_history(name, version)
            last = history[-1].action if history else None
            if after is not None and last not in after:
                stage = stage_of(history) or "not a candidate"
                raise RegistryError(
                    f"{name} {version} cannot be marked {action}: it is {stage}"
                    + (f" ({history[-1].reason})" if history and history[-1].reason else "")
                    + f"; `berg models rollout {name} {version}` shows its history"
                )
            event = RolloutEvent.model_validate(
                {
                    "action": action,
                    "at": self._clock(),
                    "actor": actor,
                    "reason": reason,
                    "policy": policy or (history[0].policy if history else ""),
                    "details": dict(details or {}),
                }
            )
            if self._store.create(layout.rollout_event(version, len(history) + 1), event.model_dump_json().encode()):
                return event
        raise RegistryError(f"the rollout of {name} {version} kept moving under concurrent writers; try again")

    def review(self, name: str, version: str, *, approve: bool, actor: str, reason: str) -> RolloutEvent:
        """A person's verdict on a challenger waiting for approval; the controller promotes an approved one.

        Raises:
            RegistryError: the version is not waiting for approval (already reviewed, or not at that stage).
        """
        if not reason.strip():
            raise RegistryError("say why: a review needs a reason (--reason)")
        return self.record_rollout(
            name,
            version,
            "approved" if approve else "rejected",
            actor=actor,
            reason=reason,
            after=frozenset({"awaiting_approval"}),
        )

    def pending_approval(self, name: str) -> list[tuple[str, list[RolloutEvent]]]:
        """The versions waiting for a person's approval, each with its rollout history, oldest first."""
        found = []
        for version in self.rollout_versions(name):
            history = self.rollout_history(name, version)
            if stage_of(history) == "awaiting_approval":
                found.append((version, history))
        return found

    def _move(
        self,
        layout: ModelLayout,
        alias: str,
        decide: Callable[[Sequence[AliasMove]], AliasMove | None],
        *,
        whole_history: bool,
    ) -> AliasMove:
        """Append the decided move to the history (exclusive create), then point the alias at it.

        The history is the source of truth and the pointer its copy for readers: if two moves race for the
        same history slot, the loser re-reads the history and decides again.

        Args:
            decide: the move to make given the history (oldest first), or None for none.
            whole_history: give ``decide`` every move, not only the current one.
        """
        for _ in range(_MAX_MOVE_ATTEMPTS):
            sequences = self._move_sequences(layout, alias)
            wanted = sequences if whole_history else sequences[-1:]
            history = [self._read_move(layout, alias, sequence) for sequence in wanted]
            move = decide(history)
            if move is None:
                # Nothing to move; repair the pointer if a writer died between the history and the pointer.
                if self._pointer(layout, alias) != history[-1]:
                    self._point(layout, alias, sequences[-1], history[-1])
                return history[-1]
            sequence = (sequences[-1] if sequences else 0) + 1
            if self._store.create(layout.alias_move(alias, sequence), move.model_dump_json().encode()):
                self._point(layout, alias, sequence, move)
                return move
        raise RegistryError(f"alias {alias!r} of model {layout.name!r} kept moving under concurrent writers; try again")

    def _point(self, layout: ModelLayout, alias: str, sequence: int, move: AliasMove) -> None:
        """Write the pointer; if a later move was recorded meanwhile, write that one instead (ours may have won)."""
        for _ in range(_MAX_MOVE_ATTEMPTS):
            self._store.replace(layout.alias(alias), move.model_dump_json().encode())
            latest = self._move_sequences(layout, alias)[-1]
            if latest == sequence:
                return
            sequence, move = latest, self._read_move(layout, alias, latest)

    def _unknown_model(self, name: str) -> str:
        known = self.models()
        listing = f"models here: {', '.join(known)}" if known else "it holds no model yet"
        return (
            f"no model named {name!r} in the registry at {self.root_uri} ({listing}); "
            "the training pipeline registers models (set BERG_REGISTRY_URI if the registry is elsewhere)"
        )
