"""Settings: one pydantic-settings base class that every Berg service extends.

Each service declares its own subclass with its own environment prefix
(``BERG_INGESTION_``, ``BERG_VALIDATION_``...), builds it once in ``main`` and
passes it down; nothing here is read at import time. Secrets are ``SecretStr``
so they never appear in logs or reprs, and placeholder secrets are refused
outside development.

Example:
    >>> class IngestionSettings(ServiceSettings):
    ...     model_config = service_config("BERG_INGESTION_")
    ...     batch_size: int = 500
    >>> settings = load_settings(IngestionSettings)
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "PLACEHOLDER_SECRETS",
    "KafkaSettings",
    "LoggingSettings",
    "ServiceSettings",
    "SettingsError",
    "load_settings",
    "service_config",
]

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "token"})
"""Values that mark a secret as never set; refused when ``environment`` is not development."""

Environment = Literal["development", "production"]


class SettingsError(Exception):
    """Raised when settings fail validation; the message names each bad field and what to do."""


class KafkaSettings(BaseModel):
    """How a service reaches Kafka."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated host:port list of brokers."""
    client_id: str = Field(default="berg", min_length=1, max_length=200)
    """Client id sent to the broker; shows up in broker logs and quotas."""
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    """Upper bound on one request to the broker."""


class LoggingSettings(BaseModel):
    """How a service logs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Root log level."""
    json_format: bool = True
    """JSON lines for machines (default); plain text for a human at a terminal."""


def service_config(env_prefix: str) -> SettingsConfigDict:
    """The settings config every service uses; only the environment prefix differs.

    Args:
        env_prefix: e.g. ``"BERG_INGESTION_"``; nested fields use ``__``
            (``BERG_INGESTION_KAFKA__BOOTSTRAP_SERVERS``).
    """
    return SettingsConfigDict(
        env_prefix=env_prefix,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )


class ServiceSettings(BaseSettings):
    """Base class for a service's settings: environment, Kafka, logging and secret hygiene."""

    model_config = service_config("BERG_")

    environment: Environment = "development"
    """``production`` refuses placeholder secrets."""
    service_name: str = Field(default="berg", min_length=1, max_length=100)
    """Name in logs and metrics."""
    kafka: KafkaSettings = KafkaSettings()
    logging: LoggingSettings = LoggingSettings()

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment == "development":
            return self
        for name, value in self:
            if isinstance(value, SecretStr) and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"{name} is a placeholder secret; set a real value in production")
        return self


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Build settings from the environment once, at start-up.

    Raises:
        SettingsError: with one line per invalid field, naming the environment
            variable to fix. Secret values are never echoed.
    """
    try:
        return settings_class()
    except ValidationError as error:
        prefix = str(settings_class.model_config.get("env_prefix", ""))
        lines = []
        for problem in error.errors(include_input=False, include_url=False):
            field = "__".join(str(part) for part in problem["loc"]).upper()
            variable = f"{prefix}{field}" if field else prefix.rstrip("_")
            lines.append(f"  {variable}: {problem['msg']}")
        raise SettingsError(f"invalid settings for {settings_class.__name__}:\n" + "\n".join(lines)) from None
