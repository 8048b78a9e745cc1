"""Opening the feature store from a given config: the profile's ``${VARS}`` from a mapping, os.environ untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from berg.features.profile import load_profile
from berg.features.settings import FeatureStoreSettings
from berg.features.store import close_store, open_store
from berg.features.store_config import (
    CLUSTER_PROFILE,
    FeatureStoreConfig,
    checkout_feature_repo,
    offline_root_from,
)
from berg.settings import load_settings

pytestmark = pytest.mark.unit


def test_the_embedded_profile_takes_the_state_dir_from_the_config_not_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BERG_STATE_DIR", "/elsewhere")
    before = dict(os.environ)
    store = open_store(FeatureStoreConfig.embedded(tmp_path))
    try:
        assert store.config.registry.path == f"sqlite:///{tmp_path}/feast/registry.db"
        assert store.config.online_store.path == f"{tmp_path}/feast/online.db"
        assert store.config.repo_path == checkout_feature_repo()
    finally:
        close_store(store)
    assert (tmp_path / "feast").is_dir()
    assert dict(os.environ) == before


def test_a_value_with_yaml_syntax_stays_one_string() -> None:
    variables = {"BERG_FEAST_REGISTRY_URL": "postgresql+psycopg://u:p#w: x@h/db", "BERG_FEAST_REDIS": "h:6379"}
    config = load_profile(FeatureStoreConfig(checkout_feature_repo(), CLUSTER_PROFILE, variables))
    assert config.registry.path == variables["BERG_FEAST_REGISTRY_URL"]
    assert config.online_store.connection_string == "h:6379"


def test_a_variable_the_config_lacks_is_named() -> None:
    config = FeatureStoreConfig(checkout_feature_repo(), CLUSTER_PROFILE, {"BERG_FEAST_REDIS": "h:6379"})
    with pytest.raises(ValueError, match="BERG_FEAST_REGISTRY_URL"):
        load_profile(config)


def test_the_embedded_profile_without_a_state_dir_says_what_to_set() -> None:
    with pytest.raises(RuntimeError, match="set BERG_STATE_DIR"):
        open_store(FeatureStoreConfig(checkout_feature_repo()))


def test_the_offline_root_is_the_given_one_else_under_the_state_dir(tmp_path: Path) -> None:
    assert offline_root_from({"BERG_FEAST_OFFLINE_ROOT": "s3://b/p/", "BERG_STATE_DIR": "/s"}) == "s3://b/p"
    assert FeatureStoreConfig.embedded(tmp_path).offline_root == str(tmp_path / "feast" / "offline")
    with pytest.raises(RuntimeError, match="BERG_FEAST_OFFLINE_ROOT"):
        offline_root_from({})


def test_the_settings_build_the_config_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BERG_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("BERG_FEATURE_REPO", str(tmp_path / "repo"))
    monkeypatch.setenv("BERG_FEAST_REDIS", "h:6379,password=secret")
    monkeypatch.delenv("BERG_FEAST_OFFLINE_ROOT", raising=False)
    monkeypatch.delenv("BERG_FEAST_REGISTRY_URL", raising=False)
    settings = load_settings(FeatureStoreSettings)
    assert "secret" not in repr(settings)
    config = settings.store_config(CLUSTER_PROFILE)
    assert config.repo == tmp_path / "repo"
    assert config.profile_file == tmp_path / "repo" / CLUSTER_PROFILE
    assert dict(config.variables) == {"BERG_STATE_DIR": str(tmp_path), "BERG_FEAST_REDIS": "h:6379,password=secret"}
    assert settings.store_config(repo=Path("/image/repo")).repo == Path("/image/repo")


def test_the_config_never_shows_its_values_which_may_be_credentials(tmp_path: Path) -> None:
    config = FeatureStoreConfig(tmp_path, variables={"BERG_FEAST_REDIS": "redis:6379,password=hunter2"})
    assert "hunter2" not in repr(config)
    assert config.variables["BERG_FEAST_REDIS"].endswith("hunter2")
