"""JSON logs: one object per line on stderr, with the service name on every record."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from berg.settings import LoggingSettings

__all__ = ["configure_logging"]

# kafka-python logs every connection attempt at INFO; WARNING keeps what matters.
_NOISY_LOGGERS = ("kafka", "uvicorn.access")


def configure_logging(settings: LoggingSettings, service_name: str) -> None:
    """Send the root logger to stderr as JSON lines (or plain text when ``json_format`` is off).

    Call once from a service's ``main``; calling again replaces the handler.
    """
    handler = logging.StreamHandler(sys.stderr)
    if settings.json_format:
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service_name},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
