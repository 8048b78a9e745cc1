"""The registry reads of the controller: what a finished run produced, and which version is in production.

The pipeline registers at most one version per run. A Kubeflow run is found by
the run id the pipeline writes into the version's lineage; a local run (whose
kfp.local job id the controller never sees) by time: the newest version created
while it ran. At most one run per model is active, so nothing else of the
controller's registered a version of that model then.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from berg.registry import ModelRegistry, ModelVersion, RegistryError
from berg_controller.open_rollouts import OpenRollouts
from berg_controller.store import RunRecord

__all__ = ["RegistryUnavailable", "RegistryView", "RunResult", "match_result"]

log = logging.getLogger(__name__)

PRODUCTION = "production"
_CLOCK_SLACK = timedelta(seconds=5)
"""The registry's clock and ours may differ a little (a pod and an object store)."""


class RegistryUnavailable(Exception):
    """The registry could not be read now; a decision that needs it waits for a retry (never a guess)."""


@dataclass(frozen=True)
class RunResult:
    version: str
    promoted: bool


def match_result(versions: Sequence[ModelVersion], run: RunRecord, finished_at: datetime) -> ModelVersion | None:
    """The version ``run`` registered, among ``versions`` of its model (pure)."""
    if run.launcher == "kfp" and run.external_id:
        by_id = [v for v in versions if v.lineage.pipeline_run_id == run.external_id]
        if by_id:
            return by_id[-1]
    # From when the run was recorded, before its process was started: ``started_at`` is written after the
    # "go", and a fast pipeline on a loaded machine can register its version before that write.
    during = [v for v in versions if run.created_at - _CLOCK_SLACK <= v.created_at <= finished_at + _CLOCK_SLACK]
    return max(during, key=lambda v: v.created_at) if during else None


class RegistryView:
    """The registry reads the controller needs: run results and the last production move."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry
        self._open = OpenRollouts(registry)

    def result(self, run: RunRecord, finished_at: datetime) -> RunResult | None:
        """The version ``run`` registered and whether it is in production now; None when there is none."""
        try:
            version = match_result(self._registry.versions(run.model), run, finished_at)
            if version is None:
                return None
            production = self._registry.alias(run.model, PRODUCTION)
        except (RegistryError, OSError, ValueError) as error:
            log.warning("cannot read the result of run %s from the registry: %s", run.id, error)
            return None
        return RunResult(version.version, production is not None and production.version == version.version)

    def production_version(self, model: str) -> str | None:
        """The version ``model``'s production alias names now; None when none was ever promoted.

        Raises:
            RegistryUnavailable: the alias could not be read (storage down, a broken pointer).
        """
        try:
            move = self._registry.alias(model, PRODUCTION)
        except Exception as error:
            # Whatever the storage raises (fsspec backends have their own errors): the caller answers 503.
            raise RegistryUnavailable(f"cannot read the production alias of {model}: {error}") from error
        return None if move is None else move.version

    def rollout_pending(self, model: str) -> str | None:
        """The newest version of ``model`` whose rollout is not over (a candidate on its way), or None.

        Raises:
            RegistryUnavailable: the rollout histories could not be read.
        """
        try:
            unfinished = self._open.unfinished(model)
        except Exception as error:
            raise RegistryUnavailable(f"cannot read the rollouts of {model}: {error}") from error
        return unfinished[-1][0] if unfinished else None

    def last_promotion(self, model: str) -> datetime | None:
        """When ``model``'s production alias last moved (its latest history entry, which the pointer copies)."""
        try:
            move = self._registry.alias(model, PRODUCTION)
        except (RegistryError, OSError, ValueError) as error:
            log.debug("cannot read the production alias of %s: %s", model, error)
            return None
        return None if move is None else move.moved_at
