"""Settings of the ingestion service (``BERG_INGESTION_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from berg.service import ConsumerServiceSettings
from berg.settings import service_config
from berg.web.app import WebSettings

__all__ = ["IngestionSettings"]


class IngestionSettings(ConsumerServiceSettings):
    """Where ingestion reads, lands and publishes."""

    model_config = service_config("BERG_INGESTION_")

    service_name: str = "ingestion"
    group_id: str = "berg-ingestion"
    web: WebSettings = WebSettings(port=8101)
    landing_dir: Path = Path(".berg/landing")
    """Root of the landing zone: ``<kind>/event_date=YYYY-MM-DD/part-*.parquet``."""
    max_record_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Larger records are dead-lettered as ``record_too_large`` without being decoded."""
