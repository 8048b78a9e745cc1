"""Settings of the features service (``BERG_FEATURES_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from berg.service import ConsumerServiceSettings
from berg.settings import service_config
from berg.web.app import WebSettings

__all__ = ["FeaturesSettings"]


class FeaturesSettings(ConsumerServiceSettings):
    """Where the feature store is, how late an event may be, how often the snapshot views are recomputed."""

    model_config = service_config("BERG_FEATURES_")

    service_name: str = "features"
    group_id: str = "berg-features"
    web: WebSettings = WebSettings(port=8103)
    feature_repo: Path | None = None
    """The Feast repo (``feature_repo/``); default: the one in this checkout or image."""
    feast_profile: str = "feature_store.yaml"
    """The repo's profile yaml: ``feature_store.yaml`` (embedded) or ``cluster/feature_store.yaml``."""
    offline_root: str = Field(default=".berg/feast/offline", min_length=1)
    """Offline sources and the label store: a folder, or ``s3://bucket/prefix``."""
    allowed_lateness_s: float = Field(default=3600.0, ge=0, le=7 * 24 * 3600)
    """How far (event time) a scored event may arrive behind its entity's latest one and still be
    aggregated; later ones are dead-lettered with reason ``late_event``. Default: one hour; the snapshot
    views' stamps wait for it too."""
    state_eviction_interval_s: float = Field(default=60.0, ge=0)
    """Wall-clock seconds between passes that drop idle entities from memory: an entity untouched since
    the previous pass whose newest event is more than the view's longest window and twice the lateness
    behind the newest one held. An entity that comes back is read back from the label store."""
    scored_topic: str | None = Field(default=None, min_length=1)
    """The scored events' topic; unset: the use case's scored stream's valid topic."""
    labels_topic: str | None = Field(default=None, min_length=1)
    """The labels' topic; unset: the use case's labels stream's valid topic."""
    snapshot_interval_s: float = Field(default=30.0, gt=0)
    """Wall-clock seconds between snapshot job runs (and their materialization), for every snapshot view."""
    snapshot_min_interval_s: float | None = Field(default=None, ge=0)
    """Once the stream has stored new events or labels, the next snapshot run starts this
    many seconds after the last one started, at the earliest, instead of ``snapshot_interval_s``
    after it (see ``berg_features.run_schedule``). Unset: the same as ``snapshot_interval_s``
    (new data waits for the schedule). Must not exceed ``snapshot_interval_s``."""
    snapshot_days_per_run: int = Field(default=7, ge=1, le=400)
    """At most this many days of a view's snapshots are recomputed per run (the newest pending first):
    a backfill of old history is worked through run by run without holding up today's."""
    snapshot_backfill_days: int = Field(default=35, ge=1, le=400)
    """The first run on a store computes snapshots this far back (bounded by the oldest
    event); after it, what arrives is tracked, however old."""

    @field_validator("snapshot_min_interval_s")
    @classmethod
    def _within_the_interval(cls, value: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("snapshot_interval_s")
        if value is not None and interval is not None and value > interval:
            raise ValueError(f"must not exceed snapshot_interval_s ({interval})")
        return value

    @property
    def snapshot_run_spacing_s(self) -> float:
        """The spacing of snapshot runs after new data: ``snapshot_min_interval_s``, or the interval."""
        return self.snapshot_interval_s if self.snapshot_min_interval_s is None else self.snapshot_min_interval_s
