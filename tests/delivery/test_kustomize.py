"""k8s/: every overlay renders with kustomize, validates, and declares Berg's topics as berg.kafka.topics does."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

from berg.kafka.topics import ALL_TOPICS, topic_specs
from tests.delivery.manifests import crd_validator
from tests.delivery.tools import KUBE_VERSION, REPO, require_tool, run_tool

pytestmark = pytest.mark.integration

OVERLAYS = sorted(path.parent.name for path in (REPO / "k8s" / "overlays").glob("*/kustomization.yaml"))
PARTITIONS = {"dev": 3, "prod": 6}
OPERATOR_KINDS = {"kafka.strimzi.io"}
"""Groups whose CRD schemas are not vendored (Strimzi is Java, not on the Go module proxy); checked here by hand."""


@cache
def build(overlay: str) -> tuple[Mapping[str, Any], ...]:
    kubectl = require_tool("kubectl")
    result = run_tool([kubectl, "kustomize", str(REPO / "k8s" / "overlays" / overlay)])
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def test_overlays_exist() -> None:
    assert OVERLAYS == ["dev", "prod"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates(overlay: str) -> None:
    problems = []
    for doc in build(overlay):
        group, _, version = doc["apiVersion"].rpartition("/")
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if group in OPERATOR_KINDS:
            continue
        if group == "monitoring.coreos.com":
            problems += [
                f"{name}: {e.message}" for e in crd_validator(group, doc["kind"], version).iter_errors(dict(doc))
            ]
            continue
        try:
            kubernetes_validate.validate(dict(doc), KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{name}: {error.message}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_berg_namespace_enforces_restricted(overlay: str) -> None:
    namespaces = {doc["metadata"]["name"]: doc for doc in build(overlay) if doc["kind"] == "Namespace"}
    labels = namespaces["berg"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/warn"] == "restricted" for ns in namespaces.values()
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_topics_match_berg(overlay: str) -> None:
    topics = {doc["spec"]["topicName"]: doc for doc in build(overlay) if doc["kind"] == "KafkaTopic"}
    assert sorted(topics) == sorted(ALL_TOPICS)
    for spec in topic_specs(PARTITIONS[overlay], {}):
        topic = topics[spec.name]
        assert topic["spec"]["partitions"] == spec.partitions, spec.name
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "berg"
        configs = {key: str(value) for key, value in topic["spec"]["config"].items()}
        assert dict(spec.configs).items() <= configs.items(), f"{spec.name}: {configs} lacks {dict(spec.configs)}"
        assert topic["spec"]["replicas"] >= int(configs["min.insync.replicas"]), spec.name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_monitoring_selects_the_charts_resources(overlay: str) -> None:
    values = yaml.safe_load((REPO / "helm" / "berg" / "values.yaml").read_text())["observability"]
    documents = {doc["kind"]: doc for doc in build(overlay)}
    prometheus, alertmanager = documents["Prometheus"]["spec"], documents["Alertmanager"]["spec"]
    assert prometheus["serviceMonitorSelector"]["matchLabels"].items() <= values["serviceMonitors"]["labels"].items()
    assert prometheus["ruleSelector"]["matchLabels"].items() <= values["prometheusRule"]["labels"].items()
    assert (
        alertmanager["alertmanagerConfigSelector"]["matchLabels"].items()
        <= values["alertmanagerConfig"]["labels"].items()
    )
