"""k8s/: every overlay renders with kustomize, validates, declares Berg's topics as berg.kafka.topics does,
and gives each service a KafkaUser granted exactly the topics and group its code uses."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

from berg.kafka.topics import DEAD_LETTER, PLATFORM_TOPICS, SHADOW_PREDICTIONS, topic_specs
from berg_features.settings import FeaturesSettings
from berg_fraud.use_case import fraud
from berg_ingestion.settings import IngestionSettings
from berg_monitoring.settings import MonitoringSettings
from berg_serving.settings import PredictionLogSettings
from berg_validation.settings import ValidationSettings
from tests.delivery.manifests import crd_validator
from tests.delivery.tools import KUBE_VERSION, REPO, require_tool, run_tool

pytestmark = pytest.mark.integration

OVERLAYS = sorted(path.parent.name for path in (REPO / "k8s" / "overlays").glob("*/kustomization.yaml"))
PARTITIONS = {"dev": 3, "prod": 6}
CRD_GROUPS = {"kafka.strimzi.io", "monitoring.coreos.com"}
"""Groups of custom resources, validated against their vendored CRD schemas (tests/delivery/crd_schemas)."""
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}


@cache
def build(overlay: str) -> tuple[Mapping[str, Any], ...]:
    kubectl = require_tool("kubectl")
    result = run_tool([kubectl, "kustomize", str(REPO / "k8s" / "overlays" / overlay)])
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def test_overlays_exist() -> None:
    assert OVERLAYS == ["dev", "prod"]


def crd_problems(doc: Mapping[str, Any]) -> list[str]:
    """What the custom resource's CRD schema refuses in ``doc``, one line each."""
    group, _, version = doc["apiVersion"].rpartition("/")
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    return [
        f"{name}: {error.message} at {list(error.absolute_path)}"
        for error in crd_validator(group, doc["kind"], version).iter_errors(dict(doc))
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates(overlay: str) -> None:
    problems = []
    kinds = set()
    for doc in build(overlay):
        group = doc["apiVersion"].rpartition("/")[0]
        if group in CRD_GROUPS:
            kinds.add(doc["kind"])
            problems += crd_problems(doc)
            continue
        try:
            kubernetes_validate.validate(dict(doc), KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert not problems, "\n".join(problems)
    assert kinds >= STRIMZI_KINDS, f"{overlay} renders no {sorted(STRIMZI_KINDS - kinds)}"


MUTATIONS: list[tuple[str, list[Any], Any, str]] = [
    # (kind, path in the first such resource, value, what the schema says), all of them mistakes
    ("KafkaTopic", ["spec", "retention.ms"], 86400000, "'retention.ms' was unexpected"),  # beside config, not in it
    ("KafkaTopic", ["spec", "partitions"], "3", "'3' is not of type 'integer'"),
    ("KafkaTopic", ["spec", "replicas"], 0, "0 is less than the minimum of 1"),
    ("Kafka", ["spec", "kafka", "listeners", 0, "tsl"], False, "'tsl' was unexpected"),
    ("Kafka", ["spec", "kafka", "listeners", 0, "type"], "clusterip", "'clusterip' is not one of"),
    ("Kafka", ["spec", "kafka", "listeners", 0, "port"], 80, "80 is less than the minimum of 9092"),
    ("Kafka", ["spec", "entityOperator", "topicOperator", "watchedNamespace"], ["kafka"], "is not of type 'string'"),
    ("KafkaNodePool", ["spec", "roles"], ["controller", "brokers"], "'brokers' is not one of"),
    ("KafkaNodePool", ["spec", "storage", "volumes", 0, "size"], 100, "100 is not of type 'string'"),
    ("KafkaNodePool", ["spec", "storage", "volumes", 0, "kraftMetadata"], "dedicated", "'dedicated' is not one of"),
    ("KafkaNodePool", ["spec", "resources", "requests", "gpu"], {}, "{} is not valid under any of the given schemas"),
]


def _mutated(overlay: str, kind: str, path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(dict(next(doc for doc in build(overlay) if doc["kind"] == kind)))
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("kind", "path", "value", "message"),
    [pytest.param(*mutation, id=f"{mutation[0]}.{'.'.join(map(str, mutation[1]))}") for mutation in MUTATIONS],
)
def test_strimzi_schemas_refuse_mistakes(kind: str, path: list[Any], value: Any, message: str) -> None:
    problems = crd_problems(_mutated("dev", kind, path, value))
    assert any(message in problem for problem in problems), problems


def test_strimzi_schemas_accept_env_vars() -> None:
    """A oneOf branch names only the field it requires (value or valueFrom): an env var's name is allowed."""
    env = [{"name": "KAFKA_HEAP_OPTS", "value": "-Xmx1g"}, {"name": "A", "valueFrom": {"secretKeyRef": {}}}]
    doc = _mutated("dev", "KafkaNodePool", ["spec", "template"], {"kafkaContainer": {"env": env}})
    assert not crd_problems(doc)


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
    use_case = fraud()  # the manifests' topics are the reference use case's
    assert sorted(topics) == sorted((*use_case.topics, *PLATFORM_TOPICS))
    for spec in topic_specs(use_case.topics, use_case.raw_topics, PARTITIONS[overlay], {}):
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


def kafka_access() -> dict[str, dict[str, set[str]]]:
    """Who reads and writes what, from the code (the table in docs/kubernetes.md): KafkaUser name to
    the topics it reads (``read``), writes (``write``) and the consumer groups it reads in (``group``)."""
    use_case = fraud()  # the manifests' topics are the reference use case's
    raw = {stream.raw_topic for stream in use_case.streams}
    ingested = {stream.ingested_topic for stream in use_case.streams}
    valid = {stream.valid_topic for stream in use_case.streams}
    return {
        "berg-ingestion": {
            "read": raw,
            "write": {*ingested, DEAD_LETTER},
            "group": {IngestionSettings.model_fields["group_id"].default},
        },
        "berg-validation": {
            "read": ingested,
            "write": {*valid, DEAD_LETTER},
            "group": {ValidationSettings.model_fields["group_id"].default},
        },
        "berg-features": {
            "read": valid,
            "write": {DEAD_LETTER},
            "group": {FeaturesSettings.model_fields["group_id"].default},
        },
        # The exporter assigns itself partitions: no group.
        "berg-monitoring": {
            "read": {
                MonitoringSettings.model_fields["predictions_topic"].default,
                SHADOW_PREDICTIONS,
                use_case.labels.valid_topic,
            },
            "write": {DEAD_LETTER},
            "group": set(),
        },
        "berg-serving": {
            "read": set(),
            "write": {PredictionLogSettings.model_fields["topic"].default, SHADOW_PREDICTIONS},
            "group": set(),
        },
    }


def _granted(user: Mapping[str, Any]) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {"read": set(), "write": set(), "group": set()}
    for acl in user["spec"]["authorization"]["acls"]:
        resource, operations = acl["resource"], set(acl["operations"])
        assert resource.get("patternType") == "literal", f"{user['metadata']['name']}: {acl} is not one name"
        assert acl.get("type", "allow") == "allow", acl
        assert "host" not in acl, acl
        if resource["type"] == "group":
            assert operations == {"Read"}, acl
            granted["group"].add(resource["name"])
        else:
            assert resource["type"] == "topic", acl
            assert operations in ({"Read"}, {"Write"}), f"{user['metadata']['name']}: {acl} grants more than one"
            granted["read" if operations == {"Read"} else "write"].add(resource["name"])
    return granted


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_a_kafka_user_granted_exactly_what_it_uses(overlay: str) -> None:
    documents = build(overlay)
    kafka = next(doc for doc in documents if doc["kind"] == "Kafka")["spec"]
    assert all(listener["authentication"]["type"] == "scram-sha-512" for listener in kafka["kafka"]["listeners"])
    assert kafka["kafka"]["authorization"]["type"] == "simple"
    users = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "KafkaUser"}
    # The Secrets Strimzi writes for them must be in the namespace of the chart's pods.
    watched = kafka["entityOperator"]["userOperator"]["watchedNamespace"]
    assert watched == "berg"
    assert {user["metadata"]["namespace"] for user in users.values()} == {watched}
    assert all(user["metadata"]["labels"]["strimzi.io/cluster"] == "berg" for user in users.values())
    assert all(user["spec"]["authentication"]["type"] == "scram-sha-512" for user in users.values())
    expected = kafka_access()
    assert sorted(users) == sorted(expected)
    for name, user in users.items():
        assert _granted(user) == expected[name], name


def test_a_kafka_user_granting_an_unlisted_topic_is_caught() -> None:
    user = copy.deepcopy(dict(next(doc for doc in build("dev") if doc["metadata"]["name"] == "berg-serving")))
    user["spec"]["authorization"]["acls"].append(
        {"resource": {"type": "topic", "name": "labels.valid", "patternType": "literal"}, "operations": ["Write"]}
    )
    assert _granted(user) != kafka_access()["berg-serving"]
    assert not crd_problems(user)
