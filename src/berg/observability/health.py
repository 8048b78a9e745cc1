"""Readiness checks: named callables that say whether a dependency is usable.

``/healthz`` (liveness) answers 200 while the process serves HTTP at all;
``/readyz`` runs every registered check and answers 503 with the failing ones,
so an orchestrator stops routing to the pod without restarting it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CheckResult", "ReadinessChecks"]

log = logging.getLogger(__name__)

Check = Callable[[], bool]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of every check: ready only when all pass."""

    ready: bool
    checks: dict[str, bool]


@dataclass
class ReadinessChecks:
    """A registry of named readiness checks, plus a manual switch for graceful shutdown."""

    _checks: dict[str, Check] = field(default_factory=dict)
    _draining: bool = False

    def add(self, name: str, check: Check) -> None:
        """Register ``check`` under ``name``; it must be quick and must not raise for 'not ready'."""
        self._checks[name] = check

    def drain(self) -> None:
        """Report not ready from now on (first step of a graceful shutdown)."""
        self._draining = True

    def run(self) -> CheckResult:
        """Run every check; a check that raises counts as failing."""
        results: dict[str, bool] = {"accepting_traffic": not self._draining}
        for name, check in self._checks.items():
            try:
                results[name] = bool(check())
            except Exception:
                log.warning("readiness check %s raised", name, exc_info=True)
                results[name] = False
        return CheckResult(ready=all(results.values()), checks=results)
