"""What the rollout reads from Prometheus: shadow observations and the watch's readings.

The monitoring exporter publishes the shadow comparison per model, champion and shadow
version (``berg_monitoring_shadow_*``), each version's prediction PSI
(``berg_monitoring_prediction_psi``) and, while enough labels are in, the recording rule
``model_version:berg_monitoring_quality_pr_auc:drop_from_reference``; the serving alerts
come from Prometheus' ``ALERTS`` series. :class:`RolloutSignals` is the seam the
controller's tests fill with a plain object.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Protocol

from berg_controller.prometheus import PrometheusClient, Sample, label_matcher
from berg_controller.rollout import ShadowObservation
from berg_controller.watch import WATCHED_SERVING_ALERTS, WatchReadings

__all__ = ["PrometheusRolloutSignals", "RolloutSignals"]

SHADOW_PREDICTIONS = "berg_monitoring_shadow_predictions"
SHADOW_LABELLED = "berg_monitoring_shadow_labelled"
SHADOW_PR_AUC = "berg_monitoring_shadow_pr_auc"
PREDICTION_PSI = "berg_monitoring_prediction_psi"
QUALITY_DROP = "model_version:berg_monitoring_quality_pr_auc:drop_from_reference"


class RolloutSignals(Protocol):
    """Reads of live behaviour; each raises :class:`~berg_controller.prometheus.PrometheusUnavailable`."""

    def shadow_observations(self, model: str) -> list[ShadowObservation]:
        """Every (champion, shadow) pair monitoring compares for ``model``."""
        ...

    def watch_readings(self, model: str, version: str, since: datetime) -> WatchReadings:
        """What the watch weighs of ``version`` now; serving alerts count only if they became active after
        ``since`` (the promotion): one already firing before it says nothing about the new version."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


_Pair = tuple[str, str]


def _by_pair(samples: list[Sample]) -> dict[_Pair, float]:
    return {(s.labels.get("champion_version", ""), s.labels.get("shadow_version", "")): s.value for s in samples}


def _single(samples: list[Sample]) -> float | None:
    return samples[0].value if samples else None


class PrometheusRolloutSignals:
    """:class:`RolloutSignals` from Prometheus' query API."""

    def __init__(self, prometheus: PrometheusClient) -> None:
        self._prometheus = prometheus

    def _per_pair(self, metric: str, model: str, extra: str = "") -> list[Sample]:
        by = "champion_version, shadow_version" + (", role" if extra else "")
        selector = f"model={label_matcher(model)}" + (f", {extra}" if extra else "")
        # max over instances: several exporters (or a restart) may publish the same pair.
        return self._prometheus.query(f"max by ({by}) ({metric}{{{selector}}})")

    def shadow_observations(self, model: str) -> list[ShadowObservation]:
        predictions = _by_pair(self._per_pair(SHADOW_PREDICTIONS, model))
        labelled = _by_pair(self._per_pair(SHADOW_LABELLED, model))
        pr_auc: dict[str, dict[_Pair, float]] = defaultdict(dict)
        for sample in self._per_pair(SHADOW_PR_AUC, model, 'role=~"champion|shadow"'):
            pair = (sample.labels.get("champion_version", ""), sample.labels.get("shadow_version", ""))
            pr_auc[sample.labels.get("role", "")][pair] = sample.value
        return [
            ShadowObservation(
                champion_version=champion,
                shadow_version=shadow,
                predictions=int(count),
                labelled=int(labelled.get((champion, shadow), 0)),
                champion_pr_auc=pr_auc["champion"].get((champion, shadow)),
                shadow_pr_auc=pr_auc["shadow"].get((champion, shadow)),
            )
            for (champion, shadow), count in sorted(predictions.items())
        ]

    def close(self) -> None:
        self._prometheus.close()

    def watch_readings(self, model: str, version: str, since: datetime) -> WatchReadings:
        alerts = "|".join(WATCHED_SERVING_ALERTS)
        # ALERTS_FOR_STATE's value is when the alert became active (pending): a loaded machine's latency alert
        # already firing when the version was promoted is not the version's doing.
        firing = self._prometheus.query(
            f'ALERTS{{alertname=~"{alerts}", alertstate="firing"}} and ignoring (alertstate) '
            f'(ALERTS_FOR_STATE{{alertname=~"{alerts}"}} > {since.timestamp():.3f})'
        )
        selector = f"{{model={label_matcher(model)}, version={label_matcher(version)}}}"
        return WatchReadings(
            firing_alerts=tuple(sorted({s.labels.get("alertname", "") for s in firing})),
            prediction_psi=_single(self._prometheus.query(f"max({PREDICTION_PSI}{selector})")),
            quality_drop=_single(self._prometheus.query(f"max({QUALITY_DROP}{selector})")),
        )
