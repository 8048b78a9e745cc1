"""The feature store's settings as the environment gives them (``BERG_STATE_DIR``, ``BERG_FEAST_*``,
``BERG_FEATURE_REPO``), read once where an application starts.

These names are shared by every process that opens the store (the features service,
serving, the pipeline's steps, Feast's CLI on ``feature_repo/``), so they carry no
service prefix. Importing this module does not import Feast.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from berg.features.store_config import (
    EMBEDDED_PROFILE,
    OFFLINE_ROOT_VARIABLE,
    STATE_DIR_VARIABLE,
    FeatureStoreConfig,
    checkout_feature_repo,
)
from berg.settings import service_config

__all__ = ["FeatureStoreSettings"]

REGISTRY_URL_VARIABLE = "BERG_FEAST_REGISTRY_URL"
REDIS_VARIABLE = "BERG_FEAST_REDIS"


class FeatureStoreSettings(BaseSettings):
    """``BERG_*`` variables of the feature store; load with :func:`berg.settings.load_settings`."""

    model_config = service_config("BERG_")

    feature_repo: Path | None = None
    """``BERG_FEATURE_REPO``: the Feast repo (an image's copy); default: ``feature_repo/`` of this checkout."""
    state_dir: Path | None = None
    """``BERG_STATE_DIR``: the embedded profile's state directory."""
    feast_offline_root: str | None = None
    """``BERG_FEAST_OFFLINE_ROOT``: the offline sources (``s3://...``); default: under the state directory."""
    feast_registry_url: SecretStr | None = None
    """``BERG_FEAST_REGISTRY_URL``: the cluster profile's SQL registry (it holds a password)."""
    feast_redis: SecretStr | None = None
    """``BERG_FEAST_REDIS``: the cluster profile's Redis online store (it may hold a password)."""

    def store_config(self, profile: str = EMBEDDED_PROFILE, repo: Path | None = None) -> FeatureStoreConfig:
        """The store to open: ``profile`` of ``repo`` (default: ``BERG_FEATURE_REPO``, else the checkout's)."""
        values = {
            STATE_DIR_VARIABLE: str(self.state_dir) if self.state_dir is not None else None,
            OFFLINE_ROOT_VARIABLE: self.feast_offline_root,
            REGISTRY_URL_VARIABLE: _revealed(self.feast_registry_url),
            REDIS_VARIABLE: _revealed(self.feast_redis),
        }
        variables = {name: value for name, value in values.items() if value}
        return FeatureStoreConfig(repo or self.feature_repo or checkout_feature_repo(), profile, variables)


def _revealed(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
