"""``helm upgrade`` with changed values, then ``helm rollback``, both waited for, against a real API server."""

from __future__ import annotations

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.test_chart_install import HELM_TIMEOUT, RELEASE, restricted_namespace
from tests.delivery.tools import CHART

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NAMESPACE = "berg-upgrade"


def _ingestion(cluster: ControlPlane) -> tuple[int, str]:
    """The ingestion Deployment's ready replicas and its log level setting, as the API server has them now."""
    deployment = cluster.get("deployment", f"{RELEASE}-ingestion", "-n", NAMESPACE)
    settings = cluster.get("configmap", f"{RELEASE}-ingestion-settings", "-n", NAMESPACE)
    return int(deployment["status"].get("readyReplicas", 0)), settings["data"]["BERG_INGESTION_LOGGING__LEVEL"]


def test_upgrade_then_rollback(cluster: ControlPlane, helm: str) -> None:
    restricted_namespace(cluster, NAMESPACE)
    wait = ("--wait", "--wait-for-jobs", "--timeout", HELM_TIMEOUT)
    cluster.helm(helm, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, *wait)
    try:
        installed = _ingestion(cluster)
        assert installed == (2, "INFO"), installed

        cluster.helm(
            helm,
            "upgrade",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--reuse-values",
            "--set",
            "ingestion.replicas=3",
            "--set",
            "global.logLevel=DEBUG",
            *wait,
        )
        assert _ingestion(cluster) == (3, "DEBUG")

        cluster.helm(helm, "rollback", RELEASE, "1", "--namespace", NAMESPACE, *wait)
        assert _ingestion(cluster) == installed
        history = cluster.helm(helm, "history", RELEASE, "--namespace", NAMESPACE, "-o", "yaml").stdout
        assert "Rollback to 1" in history, history
    finally:
        cluster.helm(helm, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", HELM_TIMEOUT)
