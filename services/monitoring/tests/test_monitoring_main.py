"""``python -m berg_monitoring`` watches the model named after the use case, unless BERG_MONITORING_MODEL_NAME
names another."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import berg_monitoring.__main__ as entry_point
from berg_monitoring import service
from tests.use_cases import CHURN, FRAUD, installed

pytestmark = pytest.mark.unit

Started = Callable[[], tuple[str, str]]


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Started:
    """Runs ``main`` up to the exporter; the use case's name and the model name it was started with."""
    monkeypatch.delenv("BERG_MONITORING_MODEL_NAME", raising=False)
    monkeypatch.setattr(entry_point, "configure_logging", lambda *_: None)
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(
        service, "run", lambda _settings, use_case, *, model_name: calls.append((use_case.name, model_name))
    )

    def start() -> tuple[str, str]:
        entry_point.main()
        (call,) = calls
        calls.clear()
        return call

    return start


def test_the_model_is_the_only_installed_use_case_s(monkeypatch: pytest.MonkeyPatch, started: Started) -> None:
    installed(monkeypatch, FRAUD)
    assert started() == ("fraud", "fraud")
    installed(monkeypatch, CHURN)
    assert started() == ("churn", "churn"), "the default follows the use case, not a literal"


def test_the_model_is_the_named_use_case_s_and_a_model_name_wins(
    monkeypatch: pytest.MonkeyPatch, started: Started
) -> None:
    installed(monkeypatch, FRAUD, CHURN)
    monkeypatch.setenv("BERG_USE_CASE", "churn")
    assert started() == ("churn", "churn")
    monkeypatch.setenv("BERG_MONITORING_MODEL_NAME", "my-model")
    assert started() == ("churn", "my-model")
