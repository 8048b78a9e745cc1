"""``python -m berg_serving`` serves the model named after the use case, unless BERG_SERVING_MODEL_NAME names
another."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import berg_serving.__main__ as entry_point
from berg_serving import runner
from tests.use_cases import CHURN, FRAUD, installed

pytestmark = pytest.mark.unit


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Callable[[], str]:
    """Runs ``main`` up to the server; the model name it was started with."""
    monkeypatch.delenv("BERG_SERVING_MODEL_NAME", raising=False)
    monkeypatch.setattr(entry_point, "configure_logging", lambda *_: None)
    names: list[str] = []
    monkeypatch.setattr(
        runner, "run", lambda _settings, _shape, _store, _stream, *, model_name, **_: names.append(model_name)
    )

    def serve() -> str:
        entry_point.main([])
        (name,) = names
        names.clear()
        return name

    return serve


def test_the_model_is_the_use_case_s(monkeypatch: pytest.MonkeyPatch, served: Callable[[], str]) -> None:
    installed(monkeypatch, FRAUD)
    assert served() == "fraud"
    installed(monkeypatch, CHURN)
    assert served() == "churn", "the default follows the use case, not a literal"
    installed(monkeypatch, FRAUD, CHURN)
    monkeypatch.setenv("BERG_USE_CASE", "churn")
    assert served() == "churn"


def test_a_model_name_wins(monkeypatch: pytest.MonkeyPatch, served: Callable[[], str]) -> None:
    installed(monkeypatch, CHURN)
    monkeypatch.setenv("BERG_SERVING_MODEL_NAME", "my-model")
    assert served() == "my-model"
    installed(monkeypatch)
    with pytest.raises(SystemExit, match=r"^BERG_USE_CASE: 0 use cases are installed"):
        served()
