"""The exporter's Prometheus metrics: gauges from the last snapshot, counters from the reader.

The gauges come from a custom collector over the latest :class:`Snapshot`, so
a scrape only formats numbers that were computed earlier; a statistic that
cannot be computed (a drift window short of a whole cycle or of the minimum rows,
no reference, not enough labels) is left out rather than exported as NaN, and a
``*_sufficient`` gauge says why. The amounts and costs carry the problem card's
currency as a label, not in their names, so every use case reads the same gauges.
Names and labels: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from berg_monitoring.shadow_comparison import ShadowComparison
from berg_monitoring.snapshot import Snapshot, finite

__all__ = ["LABEL_DELAY_BUCKETS", "MonitoringMetrics", "SnapshotCollector"]

LABEL_DELAY_BUCKETS = (60, 600, 3600, 6 * 3600, 86_400, 3 * 86_400, 7 * 86_400, 14 * 86_400, 30 * 86_400, 60 * 86_400)
"""Upper bounds (seconds) of the label-delay histogram: a minute to the simulator's 60-day clip."""


@dataclass(frozen=True)
class MonitoringMetrics:
    """Counters and histograms the reader updates as records arrive."""

    predictions: Counter
    labels: Counter
    label_delay: Histogram
    last_event: Gauge
    invalid: Counter
    evicted: Counter
    duration: Histogram
    computed_at: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> MonitoringMetrics:
        return cls(
            predictions=Counter(
                "berg_monitoring_predictions", "Predictions consumed.", ["model", "version"], registry=registry
            ),
            labels=Counter(
                "berg_monitoring_labels",
                "Labels and resolutions: joined (a label met its prediction within the card's label horizon), "
                "unmatched (a label came before its prediction and waits for it), late (a label came after the "
                "horizon: the transaction stays legitimate), expired (a transaction matured with no label within "
                "the horizon: legitimate).",
                ["outcome"],
                registry=registry,
            ),
            label_delay=Histogram(
                "berg_monitoring_label_delay_seconds",
                "Label event time minus the transaction's event time, for labels that met their prediction "
                "(late ones included).",
                ["model"],
                buckets=LABEL_DELAY_BUCKETS,
                registry=registry,
            ),
            last_event=Gauge(
                "berg_monitoring_last_event_timestamp_seconds",
                "Wall-clock time the newest record of each stream arrived (freshness).",
                ["model", "stream"],
                registry=registry,
            ),
            invalid=Counter(
                "berg_monitoring_invalid_records",
                "Records that broke their contract, sent to the dead-letter topic, by topic.",
                ["topic"],
                registry=registry,
            ),
            evicted=Counter(
                "berg_monitoring_evicted",
                "Records dropped from the join to stay within memory: predictions never labelled, labels never "
                "matched.",
                ["kind"],
                registry=registry,
            ),
            duration=Histogram(
                "berg_monitoring_statistics_duration_seconds",
                "Time to recompute every window's statistics.",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
                registry=registry,
            ),
            computed_at=Gauge(
                "berg_monitoring_statistics_timestamp_seconds",
                "When the statistics were last recomputed.",
                registry=registry,
            ),
        )


class SnapshotCollector(Collector):
    """Exports the latest snapshot; :meth:`publish` swaps it atomically (one reference assignment).

    Args:
        model: the registry model name, the ``model`` label.
        new_rows_threshold: the data-volume trigger's threshold, exported as is.
        currency: the problem card's ``costs.currency`` (ISO 4217), the ``currency`` label of the
            amounts and costs: the snapshot computes them in that currency.
    """

    def __init__(self, model: str, new_rows_threshold: int, *, currency: str) -> None:
        self._model = model
        self._threshold = new_rows_threshold
        self._currency = currency
        self._snapshot: Snapshot | None = None

    def publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self._snapshot
        model = self._model

        def family(name: str, documentation: str, labels: tuple[str, ...] = ("model", "version")) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"berg_monitoring_{name}", documentation, labels=list(labels))

        feature_psi = family(
            "feature_psi",
            "PSI of the feature over the drift window vs the training reference.",
            ("model", "version", "feature"),
        )
        feature_retrains = family(
            "feature_retrain_on_drift",
            "1 when the feature's drift may start a retraining run (FeatureDriftHigh), 0 when it is watched only "
            "(FeatureDriftWatched): its reference profile says so. Exported with the feature's PSI.",
            ("model", "version", "feature"),
        )
        feature_ks = family(
            "feature_ks",
            "Two-sample KS statistic of the feature vs the reference sample.",
            ("model", "version", "feature"),
        )
        prediction_psi = family("prediction_psi", "PSI of the score distribution vs the reference scores.")
        window_rows = family("drift_window_predictions", "Predictions in the drift window (held; a sample if sampled).")
        drift_sufficient = family(
            "drift_sufficient",
            "1 when the drift window spans whole cycles of event time and holds enough predictions: the drift "
            "gauges are exported; 0 otherwise, and they are absent.",
        )
        window_span = family(
            "drift_window_seconds",
            "Event time the drift window covers: its whole cycles once sufficient, how far the version's "
            "predictions reach so far before.",
        )
        sample_ratio = family(
            "drift_sample_ratio",
            "Probability with which each prediction of the drift window is held (below 1 once a cycle outgrows "
            "the capacity).",
        )
        pr_auc = family("quality_pr_auc", "PR-AUC of labelled predictions in the quality window.")
        precision = family("quality_precision", "Precision at the version's operating threshold.")
        recall = family("quality_recall", "Recall at the version's operating threshold.")
        calibration = family("quality_calibration_error", "Expected calibration error (10 equal-width bins).")
        labels = family("quality_labels", "Matured predictions (settled labels) in the quality window.")
        sufficient = family(
            "quality_sufficient", "1 when the quality window holds enough labels and positives to judge."
        )
        reference = family("reference_pr_auc", "The version's PR-AUC at evaluation (registry).")
        money_labels = ("model", "version", "currency")
        caught = family(
            "positive_amount_caught", "Amount of the labelled positives flagged, over the quality window.", money_labels
        )
        missed = family(
            "positive_amount_missed",
            "Amount of the labelled positives let through, over the quality window.",
            money_labels,
        )
        fp_cost = family(
            "false_positive_cost", "Cost of false positives over the quality window (problem card).", money_labels
        )
        cost = family("expected_cost", "Cost of the window's decisions under the problem card.", money_labels)
        coverage = family("label_coverage_ratio", "Share of the version's predictions whose label has arrived.")
        for version in snapshot.versions if snapshot is not None else ():
            key = [model, version.version]
            window_rows.add_metric(key, version.drift_rows)
            drift_sufficient.add_metric(key, float(version.drift_sufficient))
            window_span.add_metric(key, version.drift_span_s)
            sample_ratio.add_metric(key, version.drift_sample_ratio)
            for name, drift in version.features.items():
                if finite(drift.psi):
                    feature_psi.add_metric([*key, name], drift.psi)
                    feature_retrains.add_metric([*key, name], float(name not in version.watch_only))
                if finite(drift.ks):
                    feature_ks.add_metric([*key, name], drift.ks)
            if version.prediction is not None and finite(version.prediction.psi):
                prediction_psi.add_metric(key, version.prediction.psi)
            if finite(version.reference_pr_auc):
                reference.add_metric(key, float(version.reference_pr_auc or 0.0))
            if finite(version.label_coverage):
                coverage.add_metric(key, version.label_coverage)
            quality = version.quality
            if quality is None:
                # Predictions but nothing matured yet: say so, rather than leave the panel empty.
                labels.add_metric(key, 0)
                sufficient.add_metric(key, 0.0)
                continue
            labels.add_metric(key, quality.labels)
            sufficient.add_metric(key, float(quality.sufficient))
            if not quality.sufficient:
                continue
            for gauge, value in (
                (pr_auc, quality.pr_auc),
                (precision, quality.precision),
                (recall, quality.recall),
                (calibration, quality.calibration_error),
            ):
                if finite(value):
                    gauge.add_metric(key, value)
            for gauge, value in (
                (caught, quality.positive_amount_caught),
                (missed, quality.positive_amount_missed),
                (fp_cost, quality.false_positive_cost),
                (cost, quality.expected_cost),
            ):
                if finite(value):
                    gauge.add_metric([*key, self._currency], value)
        yield from (
            feature_psi,
            feature_retrains,
            feature_ks,
            prediction_psi,
            window_rows,
            drift_sufficient,
            window_span,
            sample_ratio,
            pr_auc,
            precision,
            recall,
            calibration,
            labels,
            sufficient,
            reference,
            caught,
            missed,
            fp_cost,
            cost,
            coverage,
        )
        new_rows = family("new_labelled_rows", "Labels since the production version's training window.", ("model",))
        if snapshot is not None and snapshot.new_labelled_rows is not None:
            new_rows.add_metric([model], snapshot.new_labelled_rows)
        yield new_rows
        threshold = family("new_labelled_rows_threshold", "The data-volume trigger's threshold (settings).", ("model",))
        threshold.add_metric([model], self._threshold)
        yield threshold
        yield from _shadow_families(model, snapshot.shadows if snapshot is not None else ())


_PAIR = ("model", "champion_version", "shadow_version")


def _shadow_families(model: str, shadows: tuple[ShadowComparison, ...]) -> Iterator[GaugeMetricFamily]:
    """The champion-vs-shadow gauges, one series per (champion, shadow) pair (the retraining controller reads
    them by these names: docs/metrics.md)."""

    def family(name: str, documentation: str, labels: tuple[str, ...] = _PAIR) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"berg_monitoring_shadow_{name}", documentation, labels=list(labels))

    predictions = family("predictions", "Shadowed requests in the pair's window.")
    labelled = family(
        "labelled",
        "Of the window's shadowed requests, those whose label is settled (as the champion's quality window "
        "settles it: positive within the card's horizon, negative past it).",
    )
    agreement = family("decision_agreement", "Share of the window's requests where the shadow decided as the champion.")
    flips = family("decision_flips", "Requests of the window where the shadow's decision differs from the champion's.")
    score_psi = family(
        "score_psi",
        "PSI of the shadow's scores against the champion's on the same requests (champion as reference, the "
        "prediction drift's binning); absent below the drift window's minimum of rows.",
    )
    sufficient = family(
        "quality_sufficient",
        "1 when the window's settled labels are enough to judge and hold both classes: the PR-AUCs are exported.",
    )
    pr_auc = family(
        "pr_auc",
        "PR-AUC of the champion and of the shadow (role) on the window's requests whose label is settled.",
        (*_PAIR, "role"),
    )
    for shadow in shadows:
        key = [model, shadow.champion_version, shadow.shadow_version]
        predictions.add_metric(key, shadow.predictions)
        labelled.add_metric(key, shadow.labelled)
        agreement.add_metric(key, shadow.agreement)
        flips.add_metric(key, shadow.flips)
        if finite(shadow.score_psi):
            score_psi.add_metric(key, shadow.score_psi)
        sufficient.add_metric(key, float(shadow.quality_sufficient))
        if shadow.quality_sufficient:
            for role, value in (("champion", shadow.champion_pr_auc), ("shadow", shadow.shadow_pr_auc)):
                if finite(value):
                    pr_auc.add_metric([*key, role], value)
    yield from (predictions, labelled, agreement, flips, score_psi, sufficient, pr_auc)
