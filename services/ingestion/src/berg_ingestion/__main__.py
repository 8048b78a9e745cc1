"""``python -m berg_ingestion``: run the ingestion service."""

from __future__ import annotations

from berg.kafka.topics import LABELS_RAW, TRANSACTIONS_RAW
from berg.service import ServiceContext, run_consumer_service
from berg.settings import load_settings_or_exit
from berg_ingestion.handler import IngestionHandler, IngestionMetrics
from berg_ingestion.landing import LandingZone
from berg_ingestion.settings import IngestionSettings


def main() -> None:
    """Read settings once, then consume until SIGTERM."""
    settings = load_settings_or_exit(IngestionSettings)

    def build(context: ServiceContext) -> IngestionHandler:
        return IngestionHandler(
            LandingZone(settings.landing_dir),
            context.producer,
            context.dead_letters,
            IngestionMetrics.register(context.registry),
            max_record_bytes=settings.max_record_bytes,
        )

    run_consumer_service(settings, topics=[TRANSACTIONS_RAW, LABELS_RAW], build_handler=build)


if __name__ == "__main__":
    main()
