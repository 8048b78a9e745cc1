"""The exceptions the model registry raises; each message says what to do next."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from berg.registry.metadata import StoredFile

__all__ = ["IntegrityError", "RegistryError"]


class RegistryError(Exception):
    """A registry operation was refused or failed; the message names the model, version or alias and the fix."""


class IntegrityError(RegistryError):
    """A registered file is missing or differs from what its version's metadata recorded at registration.

    Attributes:
        model: the model's name.
        version: the version id.
        path: the file, relative to the version's folder (``model/model.bst``).
        recorded: size and sha256 recorded at registration.
        found: size and sha256 of what is stored now; None when the file is missing.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str,
        version: str,
        path: str,
        recorded: StoredFile,
        found: StoredFile | None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.version = version
        self.path = path
        self.recorded = recorded
        self.found = found
