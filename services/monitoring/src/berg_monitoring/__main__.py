"""``python -m berg_monitoring``: run the monitoring exporter (settings from ``BERG_MONITORING_*``)."""

from __future__ import annotations

from berg.observability.logging import configure_logging
from berg.settings import load_settings_or_exit
from berg.usecase import resolve_use_case_or_exit
from berg_monitoring.settings import MonitoringSettings


def main() -> None:
    """Read the settings once, then export until SIGTERM."""
    settings = load_settings_or_exit(MonitoringSettings)
    use_case = resolve_use_case_or_exit(settings.use_case)
    configure_logging(settings.logging, settings.service_name)

    from berg_monitoring.service import run

    run(settings, use_case, model_name=settings.model_name or use_case.name)


if __name__ == "__main__":
    main()
