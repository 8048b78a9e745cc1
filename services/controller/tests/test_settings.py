"""Controller settings: the token (value or file), models, schedules, launchers, test-only hooks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from berg.settings import SettingsError, load_settings
from berg_controller.settings import ControllerSettings, KfpLauncherSettings, LocalLauncherSettings

pytestmark = pytest.mark.unit

TOKEN = SecretStr("a-token-long-enough-for-production")


def test_defaults() -> None:
    settings = ControllerSettings(webhook_token=TOKEN)
    assert settings.web.port == 8080
    assert settings.models is None, "the use case's model, resolved at start-up"
    assert settings.cooldown_s == 1800
    assert settings.launcher == "local"
    assert settings.local.command[:5] == ["{python}", "-m", "berg_app", "pipeline", "run"]
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith(".berg/controller/controller.db")
    assert settings.webhook_secret() == TOKEN.get_secret_value().encode()
    assert set(settings.trigger_alerts) == {
        "FeatureDriftHigh",
        "PredictionDriftHigh",
        "ModelQualityDegraded",
        "NewLabelledDataVolume",
    }


def test_the_token_is_required_once() -> None:
    with pytest.raises(ValidationError, match="exactly one of webhook_token and webhook_token_file"):
        ControllerSettings()
    with pytest.raises(ValidationError, match="exactly one"):
        ControllerSettings(webhook_token=TOKEN, webhook_token_file=Path("/dev/null"))


def test_the_token_file_is_read_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-a-file-0123456789\n")
    settings = ControllerSettings(webhook_token_file=path)
    assert settings.webhook_secret() == b"from-a-file-0123456789"
    assert "from-a-file" not in repr(settings)
    with pytest.raises(ValidationError, match="cannot read webhook_token_file"):
        ControllerSettings(webhook_token_file=tmp_path / "missing")
    path.write_text("  \n")
    with pytest.raises(ValidationError, match="the webhook token is empty"):
        ControllerSettings(webhook_token_file=path)


@pytest.mark.parametrize("token", ["changeme", "token", "short-token"])
def test_production_refuses_weak_tokens(token: str, tmp_path: Path) -> None:
    ControllerSettings(webhook_token=SecretStr(token))  # development takes anything
    with pytest.raises(ValidationError, match="placeholder"):
        ControllerSettings(environment="production", webhook_token=SecretStr(token))
    path = tmp_path / "token"
    path.write_text(token)
    with pytest.raises(ValidationError, match="placeholder or shorter"):
        ControllerSettings(environment="production", webhook_token_file=path)


def test_the_fault_hook_is_refused_outside_development() -> None:
    assert ControllerSettings(webhook_token=TOKEN, fault_kill_point="after_store").fault_kill_point == "after_store"
    with pytest.raises(ValidationError, match="fault_kill_point is a test setting"):
        ControllerSettings(environment="production", webhook_token=TOKEN, fault_kill_point="after_launch")


def test_models_and_schedules_are_checked() -> None:
    with pytest.raises(ValidationError, match="not registry model names"):
        ControllerSettings(webhook_token=TOKEN, models=["Fraud Model"])
    with pytest.raises(ValidationError, match="lists a name twice"):
        ControllerSettings(webhook_token=TOKEN, models=["fraud", "fraud"])
    with pytest.raises(ValidationError, match="not one of models"):
        ControllerSettings(webhook_token=TOKEN, models=["fraud"], schedules={"churn": "0 3 * * *"})
    with pytest.raises(ValidationError, match="schedule of 'fraud': minute: 61 is outside 0-59"):
        ControllerSettings(webhook_token=TOKEN, schedules={"fraud": "61 3 * * *"})
    settings = ControllerSettings(webhook_token=TOKEN, schedules={"fraud": "@daily"})
    assert settings.cron_schedules()["fraud"].hours == {0}


def test_unset_models_are_the_use_case_s_model_and_its_schedule_must_name_it() -> None:
    assert ControllerSettings(webhook_token=TOKEN).managed_models("churn") == ["churn"]
    listed = ControllerSettings(webhook_token=TOKEN, models=["fraud", "churn"], schedules={"fraud": "@daily"})
    assert listed.managed_models("churn") == ["fraud", "churn"], "listed models win over the use case's"
    scheduled = ControllerSettings(webhook_token=TOKEN, schedules={"churn": "@daily"})
    assert scheduled.managed_models("churn") == ["churn"]
    with pytest.raises(ValueError, match=r"schedules names \['churn'\], but models is unset"):
        scheduled.managed_models("fraud")


def test_local_command_placeholders() -> None:
    LocalLauncherSettings(command=["{python}", "x.py", "{model}", "{run_id}", "{{literal}}"])
    with pytest.raises(ValidationError, match=r"names \['modle'\]"):
        LocalLauncherSettings(command=["{python}", "{modle}"])
    with pytest.raises(ValidationError, match="not a valid template"):
        LocalLauncherSettings(args=["{unclosed"])


def test_the_kfp_launcher_needs_its_host_root_and_package(tmp_path: Path) -> None:
    package = tmp_path / "pipeline.yaml"
    with pytest.raises(ValidationError, match=r"needs kfp\.host"):
        ControllerSettings(webhook_token=TOKEN, launcher="kfp")
    with pytest.raises(ValidationError, match=r"needs kfp\.offline_root"):
        ControllerSettings(webhook_token=TOKEN, launcher="kfp", kfp=KfpLauncherSettings(host="http://kfp:8888"))
    with pytest.raises(ValidationError, match="is not a file"):
        ControllerSettings(
            webhook_token=TOKEN,
            launcher="kfp",
            kfp=KfpLauncherSettings(host="http://kfp:8888", offline_root="s3://b/o", pipeline_package=package),
        )
    package.write_text("{}")
    settings = ControllerSettings(
        webhook_token=TOKEN,
        launcher="kfp",
        kfp=KfpLauncherSettings(host="http://kfp:8888", offline_root="s3://b/o", pipeline_package=package),
    )
    assert settings.launcher == "kfp"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("env-token-0123456789")
    monkeypatch.setenv("BERG_CONTROLLER_WEBHOOK_TOKEN_FILE", str(token))
    monkeypatch.setenv("BERG_CONTROLLER_WEB__PORT", "8107")
    monkeypatch.setenv("BERG_CONTROLLER_MODELS", '["fraud", "churn"]')
    monkeypatch.setenv("BERG_CONTROLLER_SCHEDULES", '{"churn": "*/5 * * * *"}')
    monkeypatch.setenv("BERG_CONTROLLER_COOLDOWN_S", "5")
    monkeypatch.setenv("BERG_CONTROLLER_LOCAL__ARGS", '["--window-days", "14"]')
    monkeypatch.setenv("BERG_CONTROLLER_DATABASE_URL", "postgresql+psycopg://u:p@db/controller")
    settings = load_settings(ControllerSettings)
    assert settings.web.port == 8107
    assert settings.models == ["fraud", "churn"]
    assert settings.schedules == {"churn": "*/5 * * * *"}
    assert settings.cooldown_s == 5
    assert settings.local.args == ["--window-days", "14"]
    assert settings.effective_database_url == "postgresql+psycopg://u:p@db/controller"
    monkeypatch.setenv("BERG_CONTROLLER_LAUNCHER", "airflow")
    with pytest.raises(SettingsError, match="BERG_CONTROLLER_LAUNCHER"):
        load_settings(ControllerSettings)


def test_the_data_volume_poll_needs_a_threshold() -> None:
    with pytest.raises(ValidationError, match="threshold must be positive"):
        ControllerSettings(webhook_token=TOKEN, data_volume={"prometheus_url": "http://prometheus:9090"})


def test_the_database_url_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://berg:pw-do-not-print@db:5432/controller"
    settings = ControllerSettings(webhook_token=TOKEN, database_url=url)
    assert settings.effective_database_url == url
    for shown in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert "pw-do-not-print" not in shown
    monkeypatch.setenv("BERG_CONTROLLER_WEBHOOK_TOKEN", TOKEN.get_secret_value())
    for bad in ("postgres ql://berg:pw-do-not-print@db/controller", "mysql://berg:pw-do-not-print@db/controller"):
        monkeypatch.setenv("BERG_CONTROLLER_DATABASE_URL", bad)
        with pytest.raises(SettingsError) as raised:
            load_settings(ControllerSettings)
        assert "BERG_CONTROLLER_DATABASE_URL" in str(raised.value)
        assert "pw-do-not-print" not in str(raised.value)
