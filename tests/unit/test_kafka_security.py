"""Kafka client security: the settings a service reads at start-up and the kafka-python options they become."""

from __future__ import annotations

from pathlib import Path

import pytest

from berg.kafka.security import client_security
from berg.settings import KafkaSettings, ServiceSettings, SettingsError, load_settings, service_config

pytestmark = pytest.mark.unit

PREFIX = "BERG_EXAMPLE_KAFKA__"


class ExampleSettings(ServiceSettings):
    model_config = service_config("BERG_EXAMPLE_")


def _load(monkeypatch: pytest.MonkeyPatch, **variables: str) -> ExampleSettings:
    for name, value in variables.items():
        monkeypatch.setenv(PREFIX + name.upper(), value)
    return load_settings(ExampleSettings)


def _refusal(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    with pytest.raises(SettingsError) as raised:
        _load(monkeypatch, **variables)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_plaintext_is_the_default_and_passes_no_credentials() -> None:
    assert client_security(KafkaSettings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_settings_from_the_environment_become_the_clients_options(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load(
        monkeypatch, security_protocol="SASL_PLAINTEXT", sasl_username="berg-ingestion", sasl_password="s3cr3t-value"
    )
    assert client_security(settings.kafka) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "berg-ingestion",
        "sasl_plain_password": "s3cr3t-value",
    }


def test_sasl_over_tls_takes_another_mechanism_and_a_ca_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = _load(
        monkeypatch,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="a",
        sasl_password="s3cr3t-value",
        ssl_cafile=str(ca),
    )
    options = client_security(settings.kafka)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["ssl_cafile"] == str(ca)


def test_tls_without_sasl_passes_the_ca_file_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = _load(monkeypatch, security_protocol="SSL", ssl_cafile=str(ca))
    assert client_security(settings.kafka) == {"security_protocol": "SSL", "ssl_cafile": str(ca)}
    # Without a CA file kafka-python verifies against the system's CAs.
    monkeypatch.delenv(PREFIX + "SSL_CAFILE")
    assert client_security(load_settings(ExampleSettings).kafka) == {"security_protocol": "SSL"}


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_password": "pw-1234"}, "SASL_USERNAME: Value error, required"),
        ({"security_protocol": "SASL_SSL", "sasl_username": "a"}, "SASL_PASSWORD: Value error, required"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "a", "sasl_password": ""}, "SASL_PASSWORD"),
        ({"sasl_username": "a"}, "SASL_USERNAME: Value error, set, but security_protocol PLAINTEXT uses no SASL"),
        ({"security_protocol": "SSL", "sasl_password": "pw-1234"}, "SASL_PASSWORD: Value error, set, but"),
        ({"security_protocol": "SASL_PLAINTEXT ", "sasl_username": "a"}, "SECURITY_PROTOCOL: Input should be"),
        ({"security_protocol": "sasl_plaintext"}, "SECURITY_PROTOCOL: Input should be"),
        ({"sasl_mechanism": "GSSAPI"}, "SASL_MECHANISM: Input should be"),
        ({"ssl_cafile": "/etc/hostname"}, "SSL_CAFILE: Value error, set, but security_protocol PLAINTEXT uses no TLS"),
        ({"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.crt"}, "SSL_CAFILE: Value error, no such file"),
    ],
)
def test_a_bad_combination_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    assert PREFIX + named in _refusal(monkeypatch, **variables)


def test_the_password_never_shows_in_reprs_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load(monkeypatch, security_protocol="SASL_PLAINTEXT", sasl_username="a", sasl_password="s3cr3t-value")
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in str(settings.model_dump())
    monkeypatch.setenv(PREFIX + "REQUEST_TIMEOUT_MS", "soon")
    assert "s3cr3t-value" not in _refusal(monkeypatch)


def test_a_placeholder_password_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERG_EXAMPLE_ENVIRONMENT", "production")
    message = _refusal(monkeypatch, security_protocol="SASL_PLAINTEXT", sasl_username="a", sasl_password="changeme")
    assert f"{PREFIX}SASL_PASSWORD is a placeholder secret" in message
    monkeypatch.setenv(PREFIX + "SASL_PASSWORD", "a-real-password-1234")
    assert load_settings(ExampleSettings).kafka.sasl_password is not None
