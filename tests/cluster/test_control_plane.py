"""The tier's API server enforces what the chart is checked against: Pod Security ``restricted`` refuses a pod
that breaks it, and the operators' CRDs are Established and refuse a field their schema does not declare."""

from __future__ import annotations

import pytest
import yaml

from tests.cluster.controlplane import KWOK_NODE, ControlPlane
from tests.cluster.test_chart_install import restricted_namespace

pytestmark = [pytest.mark.cluster]


def test_restricted_namespace_refuses_a_root_pod(cluster: ControlPlane) -> None:
    restricted_namespace(cluster, "berg-pss-probe")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "runs-as-root", "namespace": "berg-pss-probe"},
        "spec": {"nodeName": KWOK_NODE, "containers": [{"name": "main", "image": "busybox"}]},
    }

    result = cluster.kubectl("create", "-f", "-", stdin=yaml.safe_dump(pod), check=False)
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in result.stderr, result.stderr


def test_custom_resources_refuse_an_undeclared_field(cluster: ControlPlane) -> None:
    service = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "typo", "namespace": "default"},
        "spec": {"predictor": {"minReplicas": 1, "maxReplica": 2}},
    }

    result = cluster.kubectl(
        "create", "--validate=strict", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(service), check=False
    )
    assert result.returncode != 0
    assert "maxReplica" in result.stderr, result.stderr
