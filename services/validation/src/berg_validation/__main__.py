"""``python -m berg_validation``: run the validation service."""

from __future__ import annotations

from berg.kafka.topics import LABELS_INGESTED, TRANSACTIONS_INGESTED
from berg.service import ServiceContext, run_consumer_service
from berg.settings import load_settings_or_exit
from berg_validation.handler import ValidationHandler, ValidationMetrics
from berg_validation.history import open_history
from berg_validation.settings import ValidationSettings
from berg_validation.suites import build_suites, create_context


def main() -> None:
    """Read settings once, build the suites once, then consume until SIGTERM."""
    settings = load_settings_or_exit(ValidationSettings)

    def build(context: ServiceContext) -> ValidationHandler:
        # Validation runs in memory; the history on disk is best effort (berg_validation.history).
        suites = build_suites(create_context(None), settings.rules)
        history = None
        if settings.data_docs_dir is not None:
            history = open_history(
                settings.data_docs_dir, settings.rules, settings.data_docs_interval_s, context.registry
            )
            if history is not None:
                context.on_shutdown(history.close)
        return ValidationHandler(
            suites,
            context.producer,
            context.dead_letters,
            ValidationMetrics.register(context.registry),
            results=history,
        )

    run_consumer_service(settings, topics=[TRANSACTIONS_INGESTED, LABELS_INGESTED], build_handler=build)


if __name__ == "__main__":
    main()
