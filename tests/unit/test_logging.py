"""JSON logs: one parseable object per line, with the service name and the caller's extra fields."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from berg.observability.logging import configure_logging
from berg.settings import LoggingSettings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_logs_are_json_lines_with_service_and_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LoggingSettings(level="INFO"), "ingestion")
    logging.getLogger("berg.test").info("batch committed", extra={"records": 12})
    logging.getLogger("berg.test").debug("not shown at INFO")
    [line] = capsys.readouterr().err.strip().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "batch committed"
    assert (entry["service"], entry["level"], entry["logger"], entry["records"]) == (
        "ingestion",
        "INFO",
        "berg.test",
        12,
    )
    assert "time" in entry


def test_exceptions_are_logged_inside_the_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LoggingSettings(), "validation")
    try:
        raise ValueError("bad batch")
    except ValueError:
        logging.getLogger("berg.test").exception("handler failed")
    entry = json.loads(capsys.readouterr().err.strip())
    assert "ValueError: bad batch" in entry["exc_info"]


def test_plain_text_for_a_human(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LoggingSettings(json_format=False), "cli")
    logging.getLogger("berg.test").warning("careful")
    assert "WARNING berg.test: careful" in capsys.readouterr().err
