"""Settings of the monitoring exporter (``BERG_MONITORING_*``), read once in ``main`` and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from berg.contracts._types import Identifier
from berg.kafka.topics import PREDICTIONS, SHADOW_PREDICTIONS
from berg.settings import ServiceSettings, service_config
from berg.web.app import WebSettings
from berg_monitoring.drift_window import DriftSpec

__all__ = ["MonitoringSettings"]


class MonitoringSettings(ServiceSettings):
    """What to watch, over which windows, and when a window is big enough to say something."""

    model_config = service_config("BERG_MONITORING_")

    service_name: str = "monitoring"
    web: WebSettings = WebSettings(port=8080)
    """``/metrics`` (what Prometheus scrapes), ``/healthz``, ``/readyz``."""
    model_name: Identifier | None = None
    """The registry model whose predictions are watched (the ``model`` label); default: the use case's name
    (``BERG_USE_CASE``), the model it trains."""
    registry_uri: str = Field(default=".berg/registry", min_length=1)
    """The model registry (reference profiles, evaluation PR-AUC, the production alias): a folder or fsspec URI."""
    problem_card: Path | None = None
    """The problem card whose costs price the decisions; default: the use case's own (``BERG_USE_CASE``)."""
    predictions_topic: str = Field(default=PREDICTIONS, min_length=1, max_length=249)
    shadow_predictions_topic: str = Field(default=SHADOW_PREDICTIONS, min_length=1, max_length=249)
    """The shadow log: a shadow challenger's scores beside the champion's on the same requests
    (:class:`~berg.contracts.ShadowPredictionV1`), compared per pair of versions."""
    labels_topic: str | None = Field(default=None, min_length=1, max_length=249)
    """The valid labels' topic; default: the use case's (``use_case.labels.valid_topic``)."""
    lookback_s: float = Field(default=7 * 86_400.0, gt=0)
    """At start, both topics are read from this long ago (by record time), so the windows are whole again
    after a restart: the exporter keeps no state of its own and commits no offsets."""
    drift_cycle_s: float = Field(default=86_400.0, ge=0, le=366 * 86_400.0)
    """Length of the traffic's cycle in event time (a day). Drift is measured over a version's predictions in the
    newest whole cycles, and not at all before they span one (a part of a day is not the reference's whole days).
    0: over the last ``drift_capacity`` predictions, whatever part of a cycle they cover."""
    drift_cycles: int = Field(default=1, ge=1, le=366)
    """Whole cycles the drift window spans at most (fewer while the version's predictions span fewer)."""
    drift_capacity: int = Field(default=20_000, ge=10, le=1_000_000)
    """Rows a version's drift window holds at most (memory: (features + 2) x 8 bytes a row). When the window's
    cycles hold more predictions, it keeps a uniform random sample of them (docs/monitoring.md)."""
    min_drift_rows: int = Field(default=200, ge=1)
    """Below this many predictions in the window a version's drift gauges are absent (too noisy)."""
    quality_window: int = Field(default=5_000, ge=10, le=1_000_000)
    """The most recent labelled predictions per version that quality is measured over."""
    min_labels: int = Field(default=200, ge=1)
    """A quality window needs this many labels..."""
    min_positives: int = Field(default=5, ge=1)
    """...and this many positives among them, or it reports ``sufficient 0`` and no quality gauges."""
    pending_capacity: int = Field(default=500_000, ge=100, le=10_000_000)
    """Predictions waiting for their label; the oldest make room (counted in ``..._evicted_total``)."""
    label_history: int = Field(default=2_000_000, ge=1_000, le=50_000_000)
    """Matured transactions remembered: their event times for the data-volume count, and their ids so that a
    replayed record or a label after the horizon is recognised."""
    new_labelled_rows_threshold: int = Field(default=50_000, ge=1)
    """Labels since the production version's training window that make retraining worthwhile
    (exported as a gauge; the NewLabelledDataVolume alert compares against it)."""
    shadow_window: int = Field(default=20_000, ge=10, le=1_000_000)
    """The most recent shadowed requests per (champion, shadow) pair that the comparison is over (memory: about
    200 bytes a request); ``max_versions`` pairs keep a window at most."""
    max_versions: int = Field(default=4, ge=1, le=50)
    """Versions with live windows at once (the newest seen); bounds the metrics' cardinality."""
    recompute_interval_s: float = Field(default=5.0, gt=0, le=3600)
    """How often the statistics are recomputed (off the scrape path)."""
    registry_poll_s: float = Field(default=10.0, gt=0, le=3600)
    """How often the production alias's history is read (retired versions, the data-volume count)."""
    retired_grace_s: float = Field(default=120.0, ge=0, le=86_400)
    """How long a version that left production keeps its drift and quality series; after it they are no longer
    exported, so alerts about it resolve. Counted from the alias move recorded in the registry (a restart
    changes nothing). Why 2 minutes: docs/monitoring.md."""
    poll_timeout_ms: int = Field(default=500, ge=10, le=60_000)
    startup_timeout_s: float = Field(default=120.0, gt=0)
    """How long to keep trying to reach Kafka at start-up."""

    def drift_spec(self) -> DriftSpec:
        """How every version's drift window is kept."""
        return DriftSpec(self.drift_capacity, self.drift_cycle_s, self.drift_cycles)

    @model_validator(mode="after")
    def _check(self) -> MonitoringSettings:
        if self.min_drift_rows > self.drift_capacity:
            raise ValueError(f"min_drift_rows ({self.min_drift_rows}) exceeds drift_capacity ({self.drift_capacity})")
        if self.min_labels > self.quality_window:
            raise ValueError(f"min_labels ({self.min_labels}) exceeds quality_window ({self.quality_window})")
        return self
