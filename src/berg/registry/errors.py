"""The one exception the model registry raises; its message says what to do next."""

from __future__ import annotations

__all__ = ["RegistryError"]


class RegistryError(Exception):
    """A registry operation was refused or failed; the message names the model, version or alias and the fix."""
