"""Serving settings: the test-only delay is refused in production, the drain fits the grace period."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from berg_serving.settings import PredictorLinkSettings, ServingSettings

pytestmark = pytest.mark.unit


def test_defaults_run_the_fused_shape() -> None:
    settings = ServingSettings()
    assert settings.shape == "fused"
    assert settings.problems_for("fused") == []
    assert settings.problems_for("predictor") == []


def test_the_transformer_needs_its_predictor() -> None:
    assert "PREDICTOR__HOST" in ServingSettings().problems_for("transformer")[0]
    settings = ServingSettings(predictor=PredictorLinkSettings(host="predictor:8081"))
    assert settings.problems_for("transformer") == []


def test_the_debug_delay_is_refused_outside_development() -> None:
    assert ServingSettings(debug_delay_s=1.0).debug_delay_s == 1.0
    with pytest.raises(ValidationError, match="debug_delay_s is a test setting"):
        ServingSettings(environment="production", debug_delay_s=1.0)


def test_the_drain_must_leave_time_for_requests_in_flight() -> None:
    with pytest.raises(ValidationError, match="must be shorter than grace_period_s"):
        ServingSettings(drain_delay_s=30.0, grace_period_s=30.0)


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERG_SERVING_SHAPE", "predictor")
    monkeypatch.setenv("BERG_SERVING_PREDICTOR__PROTOCOL", "v1")
    monkeypatch.setenv("BERG_SERVING_PREDICTION_LOG__CAPACITY", "5")
    settings = ServingSettings()
    assert (settings.shape, settings.predictor.protocol, settings.prediction_log.capacity) == ("predictor", "v1", 5)
    monkeypatch.setenv("BERG_SERVING_SHAPE", "sideways")
    with pytest.raises(ValidationError):
        ServingSettings()


def test_the_shadow_has_its_own_alias_and_a_bounded_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServingSettings()
    assert (settings.shadow.alias, settings.shadow.topic, settings.shadow.capacity) == (
        "shadow",
        "predictions.shadow",
        10_000,
    )
    monkeypatch.setenv("BERG_SERVING_SHADOW__CAPACITY", "7")
    assert ServingSettings().shadow.capacity == 7
    monkeypatch.setenv("BERG_SERVING_SHADOW__CAPACITY", "0")
    with pytest.raises(ValidationError):
        ServingSettings()
    monkeypatch.delenv("BERG_SERVING_SHADOW__CAPACITY")
    monkeypatch.setenv("BERG_SERVING_SHADOW__ALIAS", "production")
    with pytest.raises(ValidationError, match="BERG_SERVING_SHADOW__ALIAS must differ from BERG_SERVING_ALIAS"):
        ServingSettings()
