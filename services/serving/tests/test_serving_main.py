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


@pytest.fixture
def shadow_share(monkeypatch: pytest.MonkeyPatch) -> Callable[[], float]:
    """Runs ``main`` up to the server; the shadow's share it was started with."""
    monkeypatch.setattr(entry_point, "configure_logging", lambda *_: None)
    shares: list[float] = []
    monkeypatch.setattr(runner, "run", lambda *_, shadow_share, **__: shares.append(shadow_share))

    def serve() -> float:
        entry_point.main([])
        (share,) = shares
        shares.clear()
        return share

    return serve


def test_the_shadow_share_is_the_cards_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, shadow_share: Callable[[], float]
) -> None:
    installed(monkeypatch, FRAUD)
    monkeypatch.delenv("BERG_ROLLOUT_SHADOW_SHARE", raising=False)
    from berg_fraud.use_case import fraud

    assert shadow_share() == fraud().card.rollout.shadow.share
    monkeypatch.setenv("BERG_ROLLOUT_SHADOW_SHARE", "0.25")
    assert shadow_share() == 0.25
    monkeypatch.setenv("BERG_ROLLOUT_SHADOW_SHARE", "1.5")
    with pytest.raises(SystemExit, match="BERG_ROLLOUT_SHADOW_SHARE"):
        shadow_share()
