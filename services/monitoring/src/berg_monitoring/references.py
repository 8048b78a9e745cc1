"""What the registry knows that monitoring compares with: reference profiles, evaluation PR-AUC, production.

Versions are immutable, so a version's reference is read once and cached; the
production alias moves, so its history is read again every ``registry_poll_s``
(which version is in production, and since when the others are not:
:mod:`berg_monitoring.production`).
"""

from __future__ import annotations

import logging
import time

from berg.registry import ModelRegistry
from berg_monitoring.production import Production, departures
from berg_monitoring.snapshot import Reference
from berg_monitoring.statistics import ProfileError, ReferenceProfile

__all__ = ["ReferenceBook"]

log = logging.getLogger(__name__)


class ReferenceBook:
    """Cached references by version, and the production alias (its version, training-window end, departures)."""

    def __init__(self, registry: ModelRegistry, model: str, poll_s: float) -> None:
        self._registry = registry
        self._model = model
        self._poll_s = poll_s
        self._references: dict[str, Reference] = {}
        self._production = Production()
        self._production_read_at = -float("inf")

    def reference(self, version: str) -> Reference | None:
        """The version's reference, or None while the registry cannot be read (tried again next time)."""
        cached = self._references.get(version)
        if cached is not None:
            return cached
        try:
            metadata = self._registry.get(self._model, version)
        except Exception as error:
            log.warning("cannot read %s %s from the registry: %s", self._model, version, error)
            return None
        profile = None
        try:
            profile = ReferenceProfile.from_profile(metadata.reference_profile)
        except ProfileError as error:
            log.error(
                "%s %s has no usable reference profile (%s): its drift is not measured", self._model, version, error
            )
        pr_auc = metadata.metrics.get("pr_auc")
        reference = Reference(profile, float(pr_auc) if pr_auc is not None else None)
        self._references[version] = reference
        return reference

    def production(self) -> Production:
        """The production alias as last read; read again when ``poll_s`` has passed (kept while unreadable)."""
        now = time.monotonic()
        if now - self._production_read_at < self._poll_s:
            return self._production
        self._production_read_at = now
        try:
            history = self._registry.history(self._model, "production")
            current = history[-1].version if history else None
            data_end = None
            if current is not None:
                data_end = self._registry.get(self._model, current).lineage.data_end.timestamp()
        except Exception as error:
            log.warning("cannot read the production alias of %s: %s", self._model, error)
            return self._production
        if current != self._production.version:
            log.info("%s in production: %s", self._model, current)
        self._production = Production(current, data_end, departures(history))
        return self._production
