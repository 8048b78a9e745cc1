"""Settings of the retraining controller (``BERG_CONTROLLER_*``), read and checked once in ``main``.

Lists and maps are JSON in the environment, e.g.
``BERG_CONTROLLER_SCHEDULES='{"my-model": "0 3 * * *"}'``; nested settings use ``__``
(``BERG_CONTROLLER_KFP__HOST``).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from berg.contracts.alerts import ROLLBACK_ALERT
from berg.problem.card import RolloutSpec
from berg.registry.layout import is_model_name
from berg.settings import PLACEHOLDER_SECRETS, ServiceSettings, service_config
from berg.web.app import WebSettings
from berg_controller.cron import CronError, CronSchedule
from berg_controller.policy import DEFAULT_TRIGGER_ALERTS

__all__ = [
    "COMMAND_PLACEHOLDERS",
    "ControllerSettings",
    "DataVolumeSettings",
    "FaultPoint",
    "KfpLauncherSettings",
    "LauncherKind",
    "LocalLauncherSettings",
]

LauncherKind = Literal["local", "kfp"]
FaultPoint = Literal["none", "after_store", "after_launch"]

COMMAND_PLACEHOLDERS = frozenset({"python", "model", "run_id"})
"""What the local launcher's command may name: ``{python}`` (this interpreter), ``{model}``, ``{run_id}``."""

_MIN_PRODUCTION_TOKEN = 16
_DATABASE_BACKENDS = frozenset({"sqlite", "postgresql"})


def _placeholders(argument: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(argument) if name is not None}


class LocalLauncherSettings(BaseModel):
    """The embedded launcher: the pipeline as a detached child process on this machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: list[str] = Field(
        default_factory=lambda: ["{python}", "-m", "berg_app", "pipeline", "run", "--model-name", "{model}"],
        min_length=1,
    )
    """The pipeline command (``berg pipeline run``, which runs it with kfp.local); ``{python}``, ``{model}``
    and ``{run_id}`` are replaced."""
    args: list[str] = Field(default_factory=list)
    """Appended to the command, e.g. ``["--window-days", "14"]``."""
    state_dir: Path | None = None
    """The local stack's state folder, passed to the pipeline as ``BERG_STATE_DIR`` (where its feature store
    lives); unset: the child inherits the controller's environment."""
    env: dict[str, str] = Field(default_factory=dict)
    """More environment variables for the pipeline."""

    @model_validator(mode="after")
    def _known_placeholders(self) -> LocalLauncherSettings:
        for argument in [*self.command, *self.args]:
            try:
                unknown = _placeholders(argument) - COMMAND_PLACEHOLDERS
            except ValueError as error:
                raise ValueError(f"pipeline argument {argument!r} is not a valid template: {error}") from None
            if unknown:
                raise ValueError(
                    f"pipeline argument {argument!r} names {sorted(unknown)}; "
                    f"only {sorted(COMMAND_PLACEHOLDERS)} are replaced (double a brace to keep it: '{{{{')"
                )
        return self


class KfpLauncherSettings(BaseModel):
    """The cluster launcher: runs of the compiled pipeline on a Kubeflow Pipelines API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = ""
    """The KFP API, e.g. ``http://ml-pipeline.kubeflow:8888``; required with ``launcher=kfp``."""
    experiment: str = Field(default="berg", min_length=1, max_length=200)
    """The experiment runs are filed under."""
    pipeline_package: Path = Path("pipelines/compiled/training.yaml")
    """The compiled pipeline YAML sent with every run."""
    offline_root: str = ""
    """The feature store's offline root as the steps see it (``s3://...``); required with ``launcher=kfp``."""
    registry_uri: str = ""
    """The model registry as the steps see it; empty: the controller's ``registry_uri``."""
    arguments: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """More pipeline arguments (``window_days``, ``feast_profile``, ``params_json``...)."""
    request_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """Upper bound on one call to the API."""


class DataVolumeSettings(BaseModel):
    """The data-volume trigger read from Prometheus (optional: the ``NewLabelledDataVolume`` alert is one too)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prometheus_url: str = ""
    """Prometheus' API, e.g. ``http://127.0.0.1:9090``; empty: only the alert triggers on data volume."""
    threshold: int = Field(default=0, ge=0)
    """New labelled rows (``berg_monitoring_new_labelled_rows``) that start a run; required with a URL."""
    interval_s: float = Field(default=60.0, gt=0, le=86_400)
    """How often Prometheus is asked."""
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    @model_validator(mode="after")
    def _threshold_with_url(self) -> DataVolumeSettings:
        if self.prometheus_url and self.threshold == 0:
            raise ValueError("data_volume.threshold must be positive when data_volume.prometheus_url is set")
        return self


class ControllerSettings(ServiceSettings):
    """What triggers a retraining run, how runs are started and where their history is kept."""

    model_config = service_config("BERG_CONTROLLER_")

    service_name: str = "controller"
    web: WebSettings = WebSettings(port=8080)
    """The webhook, the runs API, health and metrics; the local stack sets ``BERG_CONTROLLER_WEB__PORT``."""
    state_dir: Path = Path(".berg/controller")
    """Run logs and exit files of the local launcher, and the SQLite database by default."""
    database_url: SecretStr | None = None
    """SQLAlchemy URL of the trigger and run history: ``postgresql+psycopg://user:pw@host/db`` on a cluster;
    unset or empty: ``sqlite:///<state_dir>/controller.db``. Secret: it holds the password, so repr, logs and errors
    never show it."""
    database_timeout_s: float = Field(default=5.0, gt=0, le=120)
    """How long a statement waits for a lock or a connection before the request answers 503."""
    webhook_token: SecretStr | None = None
    """The bearer token Alertmanager (and ``POST /runs``) must send; or ``webhook_token_file``."""
    webhook_token_file: Path | None = None
    """A file holding the token (Alertmanager's ``credentials_file`` reads the same file); read at start-up."""
    models: list[str] | None = Field(default=None, min_length=1, max_length=100)
    """The models the controller retrains (registry names); alerts for others are ignored. Unset: the model
    named after the use case (``BERG_USE_CASE``) alone, resolved at start-up (:meth:`managed_models`)."""
    trigger_alerts: list[str] = Field(default_factory=lambda: list(DEFAULT_TRIGGER_ALERTS), max_length=100)
    """Alert names that start a run when they fire."""
    cooldown_s: float = Field(default=1800.0, ge=0, le=30 * 86_400)
    """After a run of a model starts, automatic triggers (alerts, schedules, data volume) wait this long."""
    schedules: dict[str, str] = Field(default_factory=dict)
    """Model name to a five-field cron expression in UTC, e.g. ``{"my-model": "0 3 * * *"}``."""
    data_volume: DataVolumeSettings = DataVolumeSettings()
    prometheus_url: str = Field(default="", max_length=2000)
    """Prometheus' API (``http://127.0.0.1:9090``), where the rollout reads the shadow comparison and the watch
    reads serving alerts, prediction PSI and quality after a promotion. Empty: no watch, and a ``shadow``
    policy is refused at start-up. (``data_volume.prometheus_url`` stays the data-volume trigger's own.)"""
    prometheus_timeout_s: float = Field(default=5.0, gt=0, le=60)
    """Upper bound on one query; a timeout is a reading missed, tried again next tick."""
    registry_uri: str = Field(default=".berg/registry", min_length=1)
    """The model registry: results of runs and the last promotion are read here."""
    launcher: LauncherKind = "local"
    """``local``: a detached ``berg pipeline run``; ``kfp``: the Kubeflow Pipelines API."""
    local: LocalLauncherSettings = LocalLauncherSettings()
    kfp: KfpLauncherSettings = KfpLauncherSettings()
    poll_interval_s: float = Field(default=5.0, gt=0, le=300)
    """How often the background loop polls runs, schedules and the registry."""
    run_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    """A run still going after this long is stopped and recorded as failed."""
    fault_kill_point: FaultPoint = "none"
    """Test only: SIGKILL this process once a webhook's runs are stored (``after_store``) or started
    (``after_launch``), before the reply. Refused outside development."""

    _webhook_secret: bytes = PrivateAttr(default=b"")

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_database_url_is_unset(cls, value: object) -> object:
        empty = value == "" or (isinstance(value, SecretStr) and not value.get_secret_value())
        return None if empty else value

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value()
        # The messages never quote the URL: it holds the database password.
        try:
            backend = make_url(url).get_backend_name()
        except (ArgumentError, ValueError):
            raise ValueError(
                "not a SQLAlchemy URL (sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB)"
            ) from None
        if backend not in _DATABASE_BACKENDS:
            raise ValueError(f"the backend {backend!r} is not supported; use sqlite:/// or postgresql+psycopg://")
        return value

    @property
    def effective_database_url(self) -> str:
        """``database_url`` (its secret value), or the SQLite file under ``state_dir``."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.state_dir / 'controller.db').absolute()}"

    def webhook_secret(self) -> bytes:
        """The bearer token as bytes (from the setting or the file, read once at validation)."""
        return self._webhook_secret

    @model_validator(mode="after")
    def _check(self) -> ControllerSettings:
        self._webhook_secret = self._read_token()
        if self.environment != "development" and self.fault_kill_point != "none":
            raise ValueError("fault_kill_point is a test setting; it must be 'none' outside development")
        self._check_models()
        if self.launcher == "kfp":
            if not self.kfp.host:
                raise ValueError("launcher=kfp needs kfp.host (BERG_CONTROLLER_KFP__HOST)")
            if not self.kfp.offline_root:
                raise ValueError("launcher=kfp needs kfp.offline_root (BERG_CONTROLLER_KFP__OFFLINE_ROOT)")
            if not self.kfp.pipeline_package.is_file():
                raise ValueError(
                    f"kfp.pipeline_package {self.kfp.pipeline_package} is not a file; compile it with "
                    "`berg pipeline compile` or set BERG_CONTROLLER_KFP__PIPELINE_PACKAGE"
                )
        return self

    def _read_token(self) -> bytes:
        if (self.webhook_token is None) == (self.webhook_token_file is None):
            raise ValueError("set exactly one of webhook_token and webhook_token_file (the webhook's bearer token)")
        if self.webhook_token is not None:
            token = self.webhook_token.get_secret_value()
        else:
            assert self.webhook_token_file is not None
            try:
                token = self.webhook_token_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                raise ValueError(f"cannot read webhook_token_file {self.webhook_token_file}: {error}") from None
        if not token:
            raise ValueError("the webhook token is empty")
        if self.environment != "development" and (
            token.strip().lower() in PLACEHOLDER_SECRETS or len(token) < _MIN_PRODUCTION_TOKEN
        ):
            raise ValueError(f"the webhook token is a placeholder or shorter than {_MIN_PRODUCTION_TOKEN} characters")
        return token.encode()

    def _check_models(self) -> None:
        models = self.models or []
        bad = [name for name in models if not is_model_name(name)]
        if bad:
            raise ValueError(f"models {bad} are not registry model names (lower case, digits, '-', '_')")
        if len(set(models)) != len(models):
            raise ValueError(f"models lists a name twice: {models}")
        for model, expression in self.schedules.items():
            # Unset models are the use case's, known at start-up: managed_models checks the schedules then.
            if self.models is not None and model not in self.models:
                raise ValueError(f"schedules names {model!r}, which is not one of models {self.models}")
            try:
                CronSchedule.parse(expression)
            except CronError as error:
                raise ValueError(f"schedule of {model!r}: {error}") from None
        if any(not name for name in self.trigger_alerts):
            raise ValueError("trigger_alerts holds an empty alert name")
        if ROLLBACK_ALERT in self.trigger_alerts:
            raise ValueError(
                f"trigger_alerts names {ROLLBACK_ALERT}: a rollback is for a person; retraining on it would "
                "train on the same data again"
            )
        if self.prometheus_url and not self.prometheus_url.startswith(("http://", "https://")):
            raise ValueError(f"prometheus_url {self.prometheus_url!r} is not an http:// or https:// URL")

    def managed_models(self, use_case_name: str) -> list[str]:
        """The models retrained: ``models``, or when it is unset the one named ``use_case_name``
        (:attr:`berg.usecase.UseCase.name`, the model the use case trains).

        Raises:
            ValueError: ``models`` is unset and ``schedules`` names another model.
        """
        if self.models is not None:
            return list(self.models)
        stray = sorted(set(self.schedules) - {use_case_name})
        if stray:
            raise ValueError(
                f"schedules names {stray}, but models is unset: only the use case's model {use_case_name!r} "
                "is retrained; list every model in models (BERG_CONTROLLER_MODELS)"
            )
        return [use_case_name]

    def check_rollout(self, rollout: RolloutSpec) -> None:
        """Refuse a rollout this controller cannot carry out (called at start-up with the effective rollout).

        Raises:
            ValueError: the policy has a shadow stage but no ``prometheus_url`` to read the comparison from.
        """
        if "shadow" in rollout.policy and not self.prometheus_url:
            raise ValueError(
                f"the rollout policy {rollout.policy_name} has a shadow stage, judged from Prometheus: "
                "set BERG_CONTROLLER_PROMETHEUS_URL (or BERG_ROLLOUT_POLICY=approval or offline)"
            )

    def cron_schedules(self) -> dict[str, CronSchedule]:
        """The parsed schedules by model."""
        return {model: CronSchedule.parse(expression) for model, expression in self.schedules.items()}
