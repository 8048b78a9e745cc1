"""``python -m berg_validation``: run the validation service."""

from __future__ import annotations

from great_expectations.data_context.data_context.file_data_context import FileDataContext

from berg.kafka.topics import LABELS_INGESTED, TRANSACTIONS_INGESTED
from berg.service import ServiceContext, run_consumer_service
from berg.settings import load_settings
from berg_validation.data_docs import DataDocs
from berg_validation.handler import ValidationHandler, ValidationMetrics
from berg_validation.settings import ValidationSettings
from berg_validation.suites import build_suites, create_context


def main() -> None:
    """Read settings once, build the suites once, then consume until SIGTERM."""
    settings = load_settings(ValidationSettings)

    def build(context: ServiceContext) -> ValidationHandler:
        gx_context = create_context(settings.data_docs_dir)
        suites = build_suites(gx_context, settings.rules)
        docs = None
        if isinstance(gx_context, FileDataContext):
            docs = DataDocs(gx_context, min_interval_s=settings.data_docs_interval_s)
            context.on_shutdown(docs.close)
        return ValidationHandler(
            suites,
            context.producer,
            context.dead_letters,
            ValidationMetrics.register(context.registry),
            results=docs,
        )

    run_consumer_service(settings, topics=[TRANSACTIONS_INGESTED, LABELS_INGESTED], build_handler=build)


if __name__ == "__main__":
    main()
