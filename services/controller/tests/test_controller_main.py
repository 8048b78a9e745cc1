"""``python -m berg_controller`` retrains the model named after the use case, unless BERG_CONTROLLER_MODELS
lists the models."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

import berg_controller.__main__ as entry_point
from berg_controller import app
from tests.use_cases import CHURN, FRAUD, installed

pytestmark = pytest.mark.unit


class _Built(Exception):
    """Stops ``main`` once the app is built, before it serves."""


@pytest.fixture
def managed(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """Runs ``main`` up to the app; the models it was built to retrain."""
    monkeypatch.setenv("BERG_CONTROLLER_WEBHOOK_TOKEN", "a-token-long-enough-for-production")
    for name in ("MODELS", "SCHEDULES"):
        monkeypatch.delenv(f"BERG_CONTROLLER_{name}", raising=False)
    monkeypatch.setattr(entry_point, "configure_logging", lambda *_: None)

    def build(_settings: object, models: Sequence[str], _rollout: object = None) -> None:
        raise _Built(list(models))

    monkeypatch.setattr(app, "create_controller_app", build)

    def start() -> list[str]:
        with pytest.raises(_Built) as built:
            entry_point.main([])
        models: list[str] = built.value.args[0]
        return models

    return start


def test_the_model_is_the_use_case_s(monkeypatch: pytest.MonkeyPatch, managed: Callable[[], list[str]]) -> None:
    installed(monkeypatch, FRAUD)
    assert managed() == ["fraud"]
    installed(monkeypatch, CHURN)
    assert managed() == ["churn"], "the default follows the use case, not a literal"
    installed(monkeypatch, FRAUD, CHURN)
    monkeypatch.setenv("BERG_USE_CASE", "churn")
    assert managed() == ["churn"]


def test_listed_models_win(monkeypatch: pytest.MonkeyPatch, managed: Callable[[], list[str]]) -> None:
    installed(monkeypatch, CHURN)
    monkeypatch.setenv("BERG_CONTROLLER_MODELS", '["my-model", "other"]')
    assert managed() == ["my-model", "other"]
    installed(monkeypatch)
    with pytest.raises(SystemExit, match=r"^BERG_USE_CASE: 0 use cases are installed"):
        managed()


def test_a_schedule_of_another_model_than_the_use_case_s_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, managed: Callable[[], list[str]]
) -> None:
    installed(monkeypatch, CHURN)
    monkeypatch.setenv("BERG_CONTROLLER_SCHEDULES", '{"churn": "@daily"}')
    assert managed() == ["churn"]
    monkeypatch.setenv("BERG_CONTROLLER_SCHEDULES", '{"fraud": "@daily"}')
    with pytest.raises(SystemExit, match=r"BERG_CONTROLLER_SCHEDULES: schedules names \['fraud'\]"):
        managed()
