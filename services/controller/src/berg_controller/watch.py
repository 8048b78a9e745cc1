"""The watch after a promotion (pure, no I/O): whether the new version breaches and rolls back.

For ``watch.window_minutes`` after production moved to a version by a promotion, the
controller reads what Prometheus knows of it (:class:`WatchReadings`) and
:func:`breach` says whether it must go back: a serving alert firing, the PSI of its
live scores against its own test-window scores above ``max_prediction_psi``, or its
live PR-AUC below its evaluation by more than ``max_quality_drop``. A reading that is
missing (no labels yet, no series) is no breach: never roll back on a guess.

Example:
    >>> promotion = watched_promotion(registry.alias("m", "production"), timedelta(minutes=60), now)
    >>> breach(WatchReadings(prediction_psi=0.4), spec.watch)
    Breach(reason='prediction PSI 0.4000 above 0.25', ...)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from berg.problem.card import WatchRule
from berg.registry.aliases import AliasMove

__all__ = ["WATCHED_SERVING_ALERTS", "Breach", "WatchReadings", "breach", "watched_promotion"]

WATCHED_SERVING_ALERTS = ("ServingErrorRateHigh", "ServingLatencyHigh")
"""Serving alerts that roll a fresh promotion back while they fire."""


@dataclass(frozen=True)
class WatchReadings:
    """What Prometheus says of the promoted version now."""

    firing_alerts: tuple[str, ...] = ()
    """Names of the watched serving alerts that fire."""
    prediction_psi: float | None = None
    quality_drop: float | None = None
    """Evaluation PR-AUC minus live PR-AUC; None while monitoring has too few labels."""


@dataclass(frozen=True)
class Breach:
    """Why the version rolls back, and the figures behind it (recorded in its rollout history)."""

    reason: str
    details: Mapping[str, object] = field(default_factory=dict)


def watched_promotion(production: AliasMove | None, window: timedelta, now: datetime) -> AliasMove | None:
    """The production move under watch: a promotion less than ``window`` old; None otherwise.

    A rollback is never watched, so a version rolls back at most once per promotion.
    """
    if production is None or production.action != "promote" or window <= timedelta(0):
        return None
    return production if now - production.moved_at < window else None


def breach(readings: WatchReadings, rule: WatchRule) -> Breach | None:
    """The first breach of ``rule`` in ``readings``, or None when the version may stay."""
    details: dict[str, object] = {
        "firing_alerts": list(readings.firing_alerts),
        "prediction_psi": readings.prediction_psi,
        "max_prediction_psi": rule.max_prediction_psi,
        "quality_drop": readings.quality_drop,
        "max_quality_drop": rule.max_quality_drop,
    }
    reasons = []
    if readings.firing_alerts:
        reasons.append(f"serving alert {', '.join(readings.firing_alerts)} firing")
    if readings.prediction_psi is not None and readings.prediction_psi > rule.max_prediction_psi:
        reasons.append(f"prediction PSI {readings.prediction_psi:.4f} above {rule.max_prediction_psi:g}")
    if readings.quality_drop is not None and readings.quality_drop > rule.max_quality_drop:
        reasons.append(
            f"live PR-AUC {readings.quality_drop:.4f} below its evaluation (allowed {rule.max_quality_drop:g})"
        )
    return Breach("; ".join(reasons), details) if reasons else None
