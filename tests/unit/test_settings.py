"""Settings: env prefixes, nested values, validation errors that name the variable, secret hygiene."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from berg.settings import ServiceSettings, SettingsError, load_settings, service_config
from berg_app.stack.settings import StackSettings

pytestmark = pytest.mark.unit


class ExampleSettings(ServiceSettings):
    model_config = service_config("BERG_EXAMPLE_")

    batch_size: int = 100
    webhook_token: SecretStr = SecretStr("changeme")


def test_each_service_reads_its_own_prefix_and_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERG_EXAMPLE_BATCH_SIZE", "250")
    monkeypatch.setenv("BERG_EXAMPLE_KAFKA__BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    monkeypatch.setenv("BERG_OTHER_BATCH_SIZE", "7")
    settings = load_settings(ExampleSettings)
    assert settings.batch_size == 250
    assert settings.kafka.bootstrap_servers == "10.0.0.1:9092"


def test_invalid_values_name_the_environment_variable_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERG_EXAMPLE_BATCH_SIZE", "lots")
    with pytest.raises(SettingsError, match="BERG_EXAMPLE_BATCH_SIZE"):
        load_settings(ExampleSettings)


def test_secrets_never_show_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERG_EXAMPLE_WEBHOOK_TOKEN", "s3cr3t-value")
    settings = load_settings(ExampleSettings)
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(settings.model_dump())
    monkeypatch.setenv("BERG_EXAMPLE_BATCH_SIZE", "lots")
    with pytest.raises(SettingsError) as raised:
        load_settings(ExampleSettings)
    assert "s3cr3t-value" not in str(raised.value)


def test_placeholder_secrets_are_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERG_EXAMPLE_ENVIRONMENT", "production")
    with pytest.raises(SettingsError, match="placeholder secret"):
        load_settings(ExampleSettings)
    monkeypatch.setenv("BERG_EXAMPLE_WEBHOOK_TOKEN", "a-real-token-1234")
    assert load_settings(ExampleSettings).environment == "production"


def test_placeholder_secrets_are_fine_in_development() -> None:
    assert load_settings(ExampleSettings).webhook_token.get_secret_value() == "changeme"


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="extra"):
        ExampleSettings(batch_sise=3)  # type: ignore[call-arg]


def test_stack_ports_must_be_distinct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERG_PORTS__PROMETHEUS", "9092")
    with pytest.raises(SettingsError, match="distinct"):
        load_settings(StackSettings)


def test_kafka_home_is_read_from_its_usual_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_HOME", "/opt/kafka")
    assert str(load_settings(StackSettings).kafka_home) == "/opt/kafka"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        # Not JSON: pydantic-settings fails while decoding, before validation.
        ("BERG_SERVICES", "notjson", "BERG_SERVICES: not valid JSON"),
        ("BERG_PORTS", "{", "BERG_PORTS: not valid JSON"),
        ("BERG_PORTS__KAFKA", "x", "BERG_PORTS__KAFKA: Input should be a valid integer"),
        ("BERG_PORTS__NOPE", "1", "BERG_PORTS__NOPE: Extra inputs are not permitted"),
        ("BERG_SERVICES", '["ingestion", "nope"]', "BERG_SERVICES[1]: Input should be"),
        ("BERG_TOPIC_PARTITION_OVERRIDES", '{"transactions.raw": "x"}', "BERG_TOPIC_PARTITION_OVERRIDES[transactions"),
        ("BERG_TOPIC_PARTITIONS", "lots", "BERG_TOPIC_PARTITIONS: Input should be a valid integer"),
    ],
)
def test_every_bad_setting_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(StackSettings)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("invalid settings for StackSettings: ")
    assert named in message


def test_several_bad_settings_are_named_on_the_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERG_TOPIC_PARTITIONS", "0")
    monkeypatch.setenv("BERG_SCRAPE_INTERVAL_S", "often")
    with pytest.raises(SettingsError) as raised:
        load_settings(StackSettings)
    message = str(raised.value)
    assert "\n" not in message
    assert "BERG_TOPIC_PARTITIONS: Input should be greater than or equal to 1" in message
    assert "BERG_SCRAPE_INTERVAL_S: Input should be a valid integer" in message
