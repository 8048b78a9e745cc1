"""``python -m berg_monitoring``: run the monitoring exporter (settings from ``BERG_MONITORING_*``)."""

from __future__ import annotations

from berg.observability.logging import configure_logging
from berg.settings import load_settings_or_exit
from berg_monitoring.settings import MonitoringSettings


def main() -> None:
    """Read the settings once, then export until SIGTERM."""
    settings = load_settings_or_exit(MonitoringSettings)
    configure_logging(settings.logging, settings.service_name)

    from berg_monitoring.service import run

    run(settings)


if __name__ == "__main__":
    main()
