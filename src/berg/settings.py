"""Settings: one pydantic-settings base class that every Berg service extends.

Each service declares its own subclass with its own environment prefix
(``BERG_INGESTION_``, ``BERG_VALIDATION_``...), builds it once in ``main`` and
passes it down; nothing here is read at import time. A bad setting, of any
type, is one line naming the variable (an entry point exits with it). Secrets are ``SecretStr``
so they never appear in logs or reprs, and placeholder secrets are refused
outside development.

Example:
    >>> class IngestionSettings(ServiceSettings):
    ...     model_config = service_config("BERG_INGESTION_")
    ...     batch_size: int = 500
    >>> settings = load_settings_or_exit(IngestionSettings)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import pydantic_settings
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from berg.problem.card import RolloutSpec, parse_policy

__all__ = [
    "PLACEHOLDER_SECRETS",
    "KafkaSettings",
    "LoggingSettings",
    "ServiceSettings",
    "SettingsError",
    "UseCaseSelection",
    "load_settings",
    "load_settings_or_exit",
    "service_config",
]

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "token"})
"""Values that mark a secret as never set; refused when ``environment`` is not development."""

Environment = Literal["development", "production"]


class SettingsError(Exception):
    """Raised when settings fail; the one-line message names each bad environment variable and what is wrong."""


SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaSettings(BaseModel):
    """How a service reaches Kafka, and who it is there.

    The security fields reach every client through :func:`berg.kafka.security.client_security`.
    They are checked together at start-up: SASL needs a username and a password, and neither
    is accepted without SASL (a set credential that would be ignored is a typo'd protocol);
    a CA file needs TLS and must exist.
    """

    # validate_default: a protocol that needs a username is refused when the username is unset.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated host:port list of brokers."""
    client_id: str = Field(default="berg", min_length=1, max_length=200)
    """Client id sent to the broker; shows up in broker logs and quotas."""
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    """Upper bound on one request to the broker."""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    """``PLAINTEXT`` (the local stack), ``SASL_PLAINTEXT``, ``SASL_SSL`` or ``SSL``."""
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    """The SASL mechanism, used with a ``SASL_*`` protocol (Strimzi's KafkaUsers are SCRAM-SHA-512)."""
    sasl_username: str | None = Field(default=None, min_length=1, max_length=200)
    """The SASL user; required with a ``SASL_*`` protocol."""
    sasl_password: SecretStr | None = None
    """The SASL user's password; required with a ``SASL_*`` protocol. Never logged."""
    ssl_cafile: Path | None = None
    """PEM file of the CA that signed the brokers' certificates, with ``SSL``/``SASL_SSL``;
    unset: the system's CAs."""

    @field_validator("sasl_username", "sasl_password")
    @classmethod
    def _credentials_go_with_sasl(cls, value: object, info: ValidationInfo) -> object:
        # Earlier fields only: an invalid protocol is reported on its own variable, not here too.
        protocol = info.data.get("security_protocol")
        if protocol is None:
            return value
        sasl = protocol.startswith("SASL_")
        empty = value is None or (isinstance(value, SecretStr) and not value.get_secret_value())
        if sasl and empty:
            raise ValueError(f"required when security_protocol is {protocol}")
        if not sasl and not empty:
            raise ValueError(f"set, but security_protocol {protocol} uses no SASL; set SASL_PLAINTEXT or SASL_SSL")
        return value

    @field_validator("ssl_cafile")
    @classmethod
    def _cafile_goes_with_tls(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        protocol = info.data.get("security_protocol")
        if value is None or protocol is None:
            return value
        if not protocol.endswith("SSL"):
            raise ValueError(f"set, but security_protocol {protocol} uses no TLS; set SSL or SASL_SSL")
        if not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value


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


UseCaseName = Annotated[
    str | None, Field(pattern=r"^[a-z][a-z0-9_-]*$", validation_alias=AliasChoices("use_case", "BERG_USE_CASE"))
]
"""``BERG_USE_CASE``, one unprefixed name for every service and command."""


class ServiceSettings(BaseSettings):
    """Base class for a service's settings: environment, Kafka, logging and secret hygiene."""

    model_config = service_config("BERG_")

    environment: Environment = "development"
    """``production`` refuses placeholder secrets."""
    service_name: str = Field(default="berg", min_length=1, max_length=100)
    """Name in logs and metrics."""
    kafka: KafkaSettings = KafkaSettings()
    logging: LoggingSettings = LoggingSettings()
    use_case: UseCaseName = None
    """The use case this service serves (``BERG_USE_CASE``, one name for every service), loaded with
    :func:`berg.usecase.resolve_use_case`; unset: the only one installed."""

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.environment == "development":
            return self
        prefix = str(self.model_config.get("env_prefix", "")).upper()
        for name, value in _secrets(self):
            if value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"{prefix}{name.upper()} is a placeholder secret; set a real value in production")
        return self


def _secrets(model: BaseModel, prefix: str = "") -> list[tuple[str, SecretStr]]:
    """Every secret of ``model`` and of the models it holds (``kafka__sasl_password``), by field path."""
    found: list[tuple[str, SecretStr]] = []
    for name, value in model:
        if isinstance(value, SecretStr):
            found.append((f"{prefix}{name}", value))
        elif isinstance(value, BaseModel):
            found += _secrets(value, f"{prefix}{name}__")
    return found


class UseCaseSelection(BaseSettings):
    """Only ``BERG_USE_CASE``: read first by a service whose other settings depend on the use case.

    Example::

        use_case = resolve_use_case_or_exit(load_settings_or_exit(UseCaseSelection).use_case)
        settings = load_settings_or_exit(ValidationSettings[use_case.rules])
    """

    # Every other BERG_* variable is the full settings' business, read next.
    model_config = SettingsConfigDict(env_prefix="BERG_", extra="ignore", frozen=True)

    use_case: UseCaseName = None
    """The use case's name; unset: the only one installed."""


class RolloutOverrides(BaseSettings):
    """``BERG_ROLLOUT_*``: the use case's rollout (its card's ``rollout``) as this deployment runs it.

    One set of names for every process that reads the rollout (the pipeline's register step, the
    controller, serving), like ``BERG_USE_CASE``: a deployment picks its policy without a new card
    version. Unset fields keep the card's value.

    Example::

        rollout = load_settings_or_exit(RolloutOverrides).apply(use_case.card.rollout)
    """

    model_config = SettingsConfigDict(env_prefix="BERG_ROLLOUT_", extra="ignore", frozen=True)

    policy: str | None = Field(default=None, pattern=r"^[a-z+, ]{1,40}$")
    """``offline``, ``shadow``, ``approval`` or ``shadow+approval``."""
    shadow_share: float | None = Field(default=None, gt=0, le=1)
    shadow_min_predictions: int | None = Field(default=None, ge=1)
    shadow_min_labelled: int | None = Field(default=None, ge=0)
    shadow_max_quality_drop: float | None = Field(default=None, ge=0, le=1)
    watch_window_minutes: float | None = Field(default=None, ge=0)
    watch_max_prediction_psi: float | None = Field(default=None, gt=0)
    watch_max_quality_drop: float | None = Field(default=None, ge=0, le=1)

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                RolloutSpec.model_validate({"policy": parse_policy(value)})
            except ValidationError as error:
                raise ValueError(
                    f"{error.errors()[0]['msg']}; use offline, shadow, approval or shadow+approval"
                ) from None
        return value

    def apply(self, rollout: RolloutSpec) -> RolloutSpec:
        """``rollout`` with every field set here replacing the card's.

        Raises:
            pydantic.ValidationError: the policy names an unknown stage or names them out of order.
        """
        data = rollout.model_dump()
        if self.policy is not None:
            data["policy"] = self.policy
        for section in ("shadow", "watch"):
            for field, value in self:
                if field.startswith(f"{section}_") and value is not None:
                    data[section][field.removeprefix(f"{section}_")] = value
        return RolloutSpec.model_validate(data)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Build settings from the environment once, at start-up.

    Raises:
        SettingsError: with a one-line message naming each environment variable
            to fix and what is wrong with it. Secret values are never echoed.
    """
    try:
        return settings_class()
    except ValidationError as error:
        problems = [
            f"{_variable(settings_class, problem['loc'], problem['type'])}: {problem['msg']}"
            for problem in error.errors(include_input=False, include_url=False)
        ]
    except pydantic_settings.SettingsError as error:
        # Raised while decoding a list- or model-typed variable as JSON, before any validation.
        problems = [_undecodable(settings_class, error)]
    message = "; ".join(" ".join(problem.split()) for problem in problems)
    raise SettingsError(f"invalid settings for {settings_class.__name__}: {message}") from None


def load_settings_or_exit(settings_class: type[SettingsT]) -> SettingsT:
    """:func:`load_settings` for a process's entry point: on a bad setting, exit 1 with the one line on stderr."""
    try:
        return load_settings(settings_class)
    except SettingsError as error:
        raise SystemExit(str(error)) from None


def _prefix(settings_class: type[BaseSettings]) -> str:
    return str(settings_class.model_config.get("env_prefix", "")).upper()


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (``PortTable``, also inside ``X | None``), if it holds one."""
    candidates = [annotation, *get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def _variable(settings_class: type[BaseSettings], loc: tuple[int | str, ...], error_type: str) -> str:
    """The environment variable behind an error location (``('ports', 'kafka')`` -> ``BERG_PORTS__KAFKA``).

    Fields of nested models are joined with ``__`` as the settings read them; what follows them
    (a list index, a mapping key) is shown in brackets.
    """
    prefix = _prefix(settings_class)
    if not loc:
        return f"{prefix}*"
    if loc[0] not in settings_class.model_fields:
        # A validation alias (KAFKA_HOME): it is the variable's name itself.
        return str(loc[0]).upper()
    names: list[str] = []
    model: type[BaseModel] | None = settings_class
    rest = list(loc)
    while rest and model is not None and isinstance(rest[0], str):
        part = rest[0]
        if part in model.model_fields:
            model = _nested_model(model.model_fields[part].annotation)
        elif error_type == "extra_forbidden" and len(rest) == 1:
            model = None
        else:
            break
        names.append(part)
        rest.pop(0)
    return prefix + "__".join(names).upper() + "".join(f"[{part}]" for part in rest)


def _undecodable(settings_class: type[BaseSettings], error: pydantic_settings.SettingsError) -> str:
    """The variable(s) pydantic-settings could not decode, and why."""
    cause = error.__cause__
    why = f"not valid JSON ({cause})" if isinstance(cause, json.JSONDecodeError) else str(cause or error)
    match = re.search(r'field "([^"]+)"', str(error))
    field = settings_class.model_fields.get(match.group(1)) if match else None
    if match is None or field is None:
        return why
    alias = field.validation_alias
    names = (
        [str(choice).upper() for choice in alias.choices if isinstance(choice, str)]
        if isinstance(alias, AliasChoices)
        else [alias.upper()]
        if isinstance(alias, str)
        else [_prefix(settings_class) + match.group(1).upper()]
    )
    # Which of them is set (the field itself, or one of its nested ``__`` parts).
    set_here = sorted(
        variable
        for variable in (key.upper() for key in os.environ)
        if any(variable == name or variable.startswith(f"{name}__") for name in names)
    )
    return f"{' / '.join(set_here or names)}: {why}; lists, mappings and nested settings are set as JSON"
