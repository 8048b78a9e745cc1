"""``python -m berg_validation``: run the validation service."""

from __future__ import annotations

from berg.service import ServiceContext, run_consumer_service
from berg.settings import UseCaseSelection, load_settings_or_exit
from berg.usecase import resolve_use_case_or_exit
from berg_validation.handler import ValidationHandler, ValidationMetrics
from berg_validation.history import open_history
from berg_validation.settings import ValidationSettings
from berg_validation.suites import build_suites, create_context


def main() -> None:
    """Resolve the use case, read its settings once, build the suites once, then consume until SIGTERM."""
    use_case = resolve_use_case_or_exit(load_settings_or_exit(UseCaseSelection).use_case)
    # The rules' parameters are the use case's: its settings type is known only now.
    settings = load_settings_or_exit(ValidationSettings[use_case.rules])  # type: ignore[name-defined]
    streams = use_case.streams

    def build(context: ServiceContext) -> ValidationHandler:
        # Validation runs in memory; the history on disk is best effort (berg_validation.history).
        suites = build_suites(create_context(None), streams, settings.rules)
        history = None
        if settings.data_docs_dir is not None:
            history = open_history(
                settings.data_docs_dir, streams, settings.rules, settings.data_docs_interval_s, context.registry
            )
            if history is not None:
                context.on_shutdown(history.close)
        return ValidationHandler(
            suites,
            streams,
            context.producer,
            context.dead_letters,
            ValidationMetrics.register(context.registry),
            results=history,
        )

    run_consumer_service(settings, topics=[stream.ingested_topic for stream in streams], build_handler=build)


if __name__ == "__main__":
    main()
