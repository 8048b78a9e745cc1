"""``python -m berg_ingestion``: run the ingestion service."""

from __future__ import annotations

from berg.service import ServiceContext, run_consumer_service
from berg.settings import load_settings_or_exit
from berg.usecase import resolve_use_case_or_exit
from berg_ingestion.handler import IngestionHandler, IngestionMetrics
from berg_ingestion.landing import LandingZone
from berg_ingestion.settings import IngestionSettings


def main() -> None:
    """Read settings once, then consume until SIGTERM."""
    settings = load_settings_or_exit(IngestionSettings)
    use_case = resolve_use_case_or_exit(settings.use_case)
    streams = (use_case.scored, use_case.labels)

    def build(context: ServiceContext) -> IngestionHandler:
        return IngestionHandler(
            LandingZone(settings.landing_dir),
            streams,
            context.producer,
            context.dead_letters,
            IngestionMetrics.register(context.registry),
            max_record_bytes=settings.max_record_bytes,
        )

    run_consumer_service(settings, topics=[stream.raw_topic for stream in streams], build_handler=build)


if __name__ == "__main__":
    main()
