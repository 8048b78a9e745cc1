"""The run-failure report: bounded, cleaned of colours and secrets, written privately, read leniently."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from berg.contracts.run_failure import (
    MAX_ERROR_BYTES,
    MAX_ERROR_LINES,
    RunFailureV1,
    error_head,
    read_run_failure,
    write_run_failure,
)

pytestmark = pytest.mark.unit


def test_the_head_keeps_the_first_lines_and_bytes() -> None:
    text = "\n".join(f"line {n}" for n in range(100))
    head = error_head(text)
    assert head.splitlines() == [f"line {n}" for n in range(MAX_ERROR_LINES)]
    wide = error_head("é" * 5000)  # two bytes each: a cut through one drops it
    assert len(wide.encode()) <= MAX_ERROR_BYTES
    assert wide == "é" * (MAX_ERROR_BYTES // 2)


def test_colours_blank_edges_and_url_passwords_go() -> None:
    text = "\n\n\x1b[91mFAILURE\x1b[0m: postgresql+psycopg://berg:hunter2-pw@db:5432/x refused\n\n"
    assert error_head(text) == "FAILURE: postgresql+psycopg://berg:***@db:5432/x refused"


def test_secret_named_variables_are_masked() -> None:
    environment = {
        "AWS_SECRET_ACCESS_KEY": "abcd1234secret",
        "BERG_WEBHOOK_TOKEN": "tok-0123456789",
        "HOME": "/root",
        "SHORT_TOKEN": "ab",
    }
    text = "KeyError: abcd1234secret and tok-0123456789 in /root (ab)"
    assert error_head(text, environment) == "KeyError: *** and *** in /root (ab)"


def test_a_report_round_trips_privately(tmp_path: Path) -> None:
    path = tmp_path / "failure.json"
    failure = RunFailureV1(step="build-dataset", error="DatasetError: no labels")
    write_run_failure(path, failure)
    assert read_run_failure(path) == failure
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_run_failure(tmp_path / "missing.json") is None
    path.write_text('{"step": "x", "error": "y", "extra": 1}')
    assert read_run_failure(path) is None  # not a report: only a hint, never an error of its own
