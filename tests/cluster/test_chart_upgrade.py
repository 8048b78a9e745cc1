"""``helm upgrade`` with changed values, then ``helm rollback``, both waited for, against a real API server."""

from __future__ import annotations

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.test_chart_install import (
    CHART_VALUES,
    HELM_TIMEOUT,
    RELEASE,
    restricted_namespace,
    user_prerequisites,
)
from tests.cluster.workloads import helm_merge
from tests.delivery.tools import CHART

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NAMESPACE = "berg-upgrade"
DEFAULT = CHART / "ci" / "default-values.yaml"


def _ingestion(cluster: ControlPlane) -> tuple[int, str, int, str]:
    """The ingestion autoscaler's most replicas, its log level setting, its available replicas and its pods'
    settings checksum, as the API server has them now."""
    autoscaler = cluster.get("horizontalpodautoscaler", f"{RELEASE}-ingestion", "-n", NAMESPACE)
    settings = cluster.get("configmap", f"{RELEASE}-ingestion-settings", "-n", NAMESPACE)
    deployment = cluster.get("deployment", f"{RELEASE}-ingestion", "-n", NAMESPACE)
    return (
        int(autoscaler["spec"]["maxReplicas"]),
        settings["data"]["BERG_INGESTION_LOGGING__LEVEL"],
        int(deployment["status"].get("availableReplicas", 0)),
        deployment["spec"]["template"]["metadata"]["annotations"]["checksum/settings"],
    )


def test_upgrade_then_rollback(cluster: ControlPlane, helm: str) -> None:
    restricted_namespace(cluster, NAMESPACE)
    cluster.apply(user_prerequisites(NAMESPACE, helm_merge(CHART_VALUES, yaml.safe_load(DEFAULT.read_text()))))
    wait = ("--wait", "--wait-for-jobs", "--timeout", HELM_TIMEOUT)
    cluster.helm(helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--values", str(DEFAULT), *wait)
    try:
        installed = _ingestion(cluster)
        assert installed[:2] == (3, "INFO"), installed
        assert installed[2] >= 1, installed

        cluster.helm(
            helm,
            "upgrade",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--reuse-values",
            "--set",
            "ingestion.autoscaling.maxReplicas=5",
            "--set",
            "global.logLevel=DEBUG",
            *wait,
        )
        # The settings changed, so did the pods' checksum annotation: helm waited for the rollout.
        upgraded = _ingestion(cluster)
        assert upgraded[:2] == (5, "DEBUG"), upgraded
        assert upgraded[2] >= 1, upgraded
        assert upgraded[3] != installed[3]

        cluster.helm(helm, "rollback", RELEASE, "1", "--namespace", NAMESPACE, *wait)
        rolled_back = _ingestion(cluster)
        assert rolled_back[:2] == installed[:2], rolled_back
        assert rolled_back[2] >= 1, rolled_back
        assert rolled_back[3] == installed[3]
        history = cluster.helm(helm, "history", RELEASE, "--namespace", NAMESPACE, "-o", "yaml").stdout
        assert "Rollback to 1" in history, history
    finally:
        cluster.helm(helm, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", HELM_TIMEOUT)
