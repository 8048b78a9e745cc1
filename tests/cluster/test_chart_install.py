"""The chart installed into a real API server: every ``helm/berg/ci`` scenario in a namespace enforcing Pod
Security ``restricted``, its workloads available on the kwok node, its pods' references resolvable, every pod
selected by a NetworkPolicy, and each ServiceAccount's rights exactly the allowlist (SubjectAccessReview)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.workloads import helm_merge, label_selector, missing_references, pod_references
from tests.delivery.rbac_allowlist import RBAC_ALLOWLIST
from tests.delivery.tools import CHART, CI_VALUES
from tests.helpers import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

RELEASE = "berg"
SCENARIOS = {values.name.removesuffix("-values.yaml"): values for values in CI_VALUES}
CHART_VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
HELM_TIMEOUT = "15m"
"""helm's own wait limit: generous for a busy machine (the wait ends as soon as everything is available)."""
INFERENCE_SERVICE_READY_S = 300.0
"""How long KServe's Deployments (which helm does not wait for) may take; the wait ends as soon as they are."""

_PROBED_RESOURCES = (
    ("", "secrets"),
    ("", "configmaps"),
    ("", "pods"),
    ("", "serviceaccounts"),
    ("apps", "deployments"),
    ("serving.kserve.io", "inferenceservices"),
    ("rbac.authorization.k8s.io", "rolebindings"),
)
_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")


@dataclass(frozen=True)
class Installed:
    """One scenario's release, installed and waited for."""

    scenario: str
    namespace: str
    values: Mapping[str, Any]


def restricted_namespace(cluster: ControlPlane, name: str) -> None:
    """A namespace whose pods must meet Pod Security ``restricted`` (enforced, not only warned)."""
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")} | {
        "pod-security.kubernetes.io/enforce-version": "latest"
    }
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}])


def user_prerequisites(namespace: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What docs/kubernetes.md asks a user to create before installing with these (merged) values: the Secrets
    the chart references by name (the Kafka users' as Strimzi writes them), and, for a claim the chart creates,
    a volume of its class (what a storage provisioner does on a real cluster)."""
    objects: list[dict[str, Any]] = []

    def secret(name: str, data: dict[str, str], kind: str = "Opaque") -> None:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
                "type": kind,
                "stringData": data,
            }
        )

    for pull_secret in values["global"]["imagePullSecrets"]:
        secret(pull_secret, {".dockerconfigjson": '{"auths": {}}'}, "kubernetes.io/dockerconfigjson")
    feature_store = values["featureStore"]
    secret(
        feature_store["existingSecret"],
        {
            "registry-url": "postgresql+psycopg://feast@postgres.example:5432/feast",
            feature_store["servingRegistryKey"]: "postgresql+psycopg://feast_reader@postgres.example:5432/feast",
            "redis": "redis.example:6379",
        },
    )
    database, webhook = values["controller"]["database"], values["controller"]["webhook"]
    secret(database["existingSecret"], {database["key"]: "postgresql+psycopg://berg@postgres.example:5432/berg"})
    secret(webhook["existingSecret"], {webhook["key"]: "a-webhook-token-of-32-characters"})
    kafka = values["kafka"]["auth"]
    if kafka["mechanism"] != "none":
        # What Strimzi's user operator writes for each KafkaUser (k8s/base/kafka/users.yaml).
        for user in kafka["users"].values():
            secret(user["existingSecret"], {"password": f"{user['username']}-password"})
    storage = values["objectStorage"]
    for object_storage in {storage["existingSecret"], *storage["componentSecrets"].values()} - {""}:
        secret(object_storage, {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"})
    claim = values["storage"]["persistentVolumeClaim"]
    if claim["create"]:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"{namespace}-shared"},
                "spec": {
                    "capacity": {"storage": claim["size"]},
                    "accessModes": claim["accessModes"],
                    "storageClassName": claim["storageClassName"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "hostPath": {"path": f"/var/lib/berg-test/{namespace}"},
                },
            }
        )
    return objects


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def installed(request: pytest.FixtureRequest, cluster: ControlPlane, helm: str) -> Iterator[Installed]:
    """``helm install --wait`` of one scenario into its own restricted namespace; uninstalled afterwards."""
    scenario: str = request.param
    namespace = f"berg-{scenario}"
    values_path: Path = SCENARIOS[scenario]
    values = helm_merge(CHART_VALUES, yaml.safe_load(values_path.read_text()) or {})
    restricted_namespace(cluster, namespace)
    if prerequisites := user_prerequisites(namespace, values):
        cluster.apply(prerequisites)
    cluster.helm(
        helm,
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--values",
        str(values_path),
        "--wait",
        "--wait-for-jobs",
        "--timeout",
        HELM_TIMEOUT,
    )
    yield Installed(scenario, namespace, values)
    cluster.helm(helm, "uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", HELM_TIMEOUT)


def _unavailable(cluster: ControlPlane, namespace: str) -> list[str]:
    cluster.check_alive()
    return [
        deployment["metadata"]["name"]
        for deployment in cluster.get("deployments", "-n", namespace)["items"]
        if not any(
            condition["type"] == "Available" and condition["status"] == "True"
            for condition in deployment["status"].get("conditions") or []
        )
    ]


def test_every_deployment_is_available(cluster: ControlPlane, installed: Installed) -> None:
    """The chart's Deployments (helm waited for them) and KServe's (which helm does not know about)."""
    assert cluster.get("deployments", "-n", installed.namespace)["items"], f"{installed.scenario}: no Deployment"
    wait_for(
        lambda: not _unavailable(cluster, installed.namespace),
        INFERENCE_SERVICE_READY_S,
        "every Deployment to be available",
    )


def _inference_service_ready(cluster: ControlPlane, namespace: str) -> bool:
    cluster.check_alive()
    services = cluster.get("inferenceservices", "-n", namespace)["items"]
    return bool(services) and all(
        any(
            condition["type"] == "Ready" and condition["status"] == "True"
            for condition in (service.get("status") or {}).get("conditions") or []
        )
        for service in services
    )


def test_inference_service_is_reconciled_ready(cluster: ControlPlane, installed: Installed) -> None:
    """KServe's controller turns Berg's InferenceService into Deployments that become available on the node."""
    if installed.values["serving"]["deploymentMode"] == "Knative":
        pytest.skip("Knative mode: test_knative_mode_becomes_knative_services (no Knative controller runs)")
    wait_for(
        lambda: _inference_service_ready(cluster, installed.namespace),
        INFERENCE_SERVICE_READY_S,
        "the InferenceService to be Ready",
    )
    (service,) = cluster.get("inferenceservices", "-n", installed.namespace)["items"]
    name = service["metadata"]["name"]
    components = (
        ["predictor"]
        if installed.values["serving"]["shape"] == "fused"
        else [
            "predictor",
            "transformer",
        ]
    )
    created = {
        deployment["metadata"]["name"]
        for deployment in cluster.get(
            "deployments", "-n", installed.namespace, "-l", f"serving.kserve.io/inferenceservice={name}"
        )["items"]
    }
    assert created == {f"{name}-{component}" for component in components}


def _knative_services(cluster: ControlPlane, namespace: str) -> dict[str, Any]:
    cluster.check_alive()
    return {
        service["metadata"]["name"]: service
        for service in cluster.get("services.serving.knative.dev", "-n", namespace)["items"]
    }


def test_knative_mode_becomes_knative_services(cluster: ControlPlane, installed: Installed) -> None:
    """KServe's controller turns a Knative-mode InferenceService into one Knative Service per component, with the
    chart's containers and its autoscaling; Knative's own controller (not run here) takes it from there."""
    serving = installed.values["serving"]
    if serving["deploymentMode"] != "Knative":
        pytest.skip("Standard mode: test_inference_service_is_reconciled_ready")
    (service,) = cluster.get("inferenceservices", "-n", installed.namespace)["items"]
    name = service["metadata"]["name"]
    components = ["predictor"] if serving["shape"] == "fused" else ["predictor", "transformer"]
    wanted = {f"{name}-{component}" for component in components}
    wait_for(
        lambda: set(_knative_services(cluster, installed.namespace)) >= wanted,
        INFERENCE_SERVICE_READY_S,
        f"KServe to create the Knative Services {sorted(wanted)}",
    )
    knative = _knative_services(cluster, installed.namespace)
    for component in components:
        template = knative[f"{name}-{component}"]["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["autoscaling.knative.dev/metric"] == serving[component]["scaleMetric"], annotations
        assert annotations["autoscaling.knative.dev/target"] == str(serving[component]["scaleTarget"]), annotations
        (container,) = template["spec"]["containers"]
        assert container["args"][:2] == ["--shape", component], container["args"]


def test_every_job_completed(cluster: ControlPlane, installed: Installed) -> None:
    for job in cluster.get("jobs", "-n", installed.namespace)["items"]:
        assert job["status"].get("succeeded", 0) >= 1, f"Job {job['metadata']['name']}: {job['status']}"


def test_every_hook_is_admitted(cluster: ControlPlane, helm: str, installed: Installed) -> None:
    """The release's hooks (``helm test``'s pod) pass admission, Pod Security included, in the namespace."""
    hooks = cluster.helm(helm, "get", "hooks", RELEASE, "--namespace", installed.namespace).stdout
    documents = [doc for doc in yaml.safe_load_all(hooks) if doc]
    assert documents, "the release has no hook"
    namespace = installed.namespace
    result = cluster.kubectl(
        "create", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", "-", stdin=hooks, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_pod_reference_resolves(cluster: ControlPlane, installed: Installed) -> None:
    """kwok starts no container, so a missing ConfigMap, Secret key or claim would not stop a pod here; read them."""
    pods = cluster.get("pods", "-n", installed.namespace)["items"]
    objects: dict[tuple[str, str], Mapping[str, Any]] = {}
    for kind in ("ConfigMap", "Secret", "ServiceAccount", "PersistentVolumeClaim"):
        for item in cluster.get(kind.lower(), "-n", installed.namespace)["items"]:
            objects[(kind, item["metadata"]["name"])] = item
    problems = {
        pod["metadata"]["name"]: missing
        for pod in pods
        if (missing := missing_references(pod_references(pod), objects))
    }
    assert not problems, problems


def test_every_pod_is_selected_by_a_network_policy(cluster: ControlPlane, installed: Installed) -> None:
    policies = cluster.get("networkpolicies", "-n", installed.namespace)["items"]
    pods = {pod["metadata"]["name"] for pod in cluster.get("pods", "-n", installed.namespace)["items"]}
    if not installed.values["networkPolicy"]["enabled"]:
        pytest.skip("this scenario turns NetworkPolicies off")
    assert policies, "no NetworkPolicy was admitted"
    selected: set[str] = set()
    for policy in policies:
        selector = label_selector(policy["spec"].get("podSelector") or {})
        found = cluster.get("pods", "-n", installed.namespace, *(["-l", selector] if selector else []))
        selected |= {pod["metadata"]["name"] for pod in found["items"]}
    assert pods - selected == set(), f"pods no NetworkPolicy selects: {sorted(pods - selected)}"


def _rules_review(client: httpx.Client, user: str, namespace: str) -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource, resourceName, verb) the API server's authorizer grants ``user`` in ``namespace``."""
    response = client.post(
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        json={
            "kind": "SelfSubjectRulesReview",
            "apiVersion": "authorization.k8s.io/v1",
            "spec": {"namespace": namespace},
        },
        headers={"Impersonate-User": user},
    )
    response.raise_for_status()
    granted: set[tuple[str, str, str, str]] = set()
    for rule in response.json()["status"]["resourceRules"]:
        for group in rule.get("apiGroups") or [""]:
            for resource in rule.get("resources") or []:
                for name in rule.get("resourceNames") or ["*"]:
                    for verb in rule["verbs"]:
                        granted.add((group, resource, name, verb))
    return granted


def _allowed(client: httpx.Client, user: str, namespace: str, group: str, resource: str, verb: str) -> bool:
    """A SubjectAccessReview: may ``user`` (with a ServiceAccount's groups) ``verb`` ``resource`` in ``namespace``?"""
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}", "system:authenticated"]
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": groups,
            "resourceAttributes": {"namespace": namespace, "group": group, "resource": resource, "verb": verb},
        },
    }
    response = client.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=review)
    response.raise_for_status()
    return bool(response.json()["status"].get("allowed"))


def test_service_accounts_hold_exactly_the_allowlist(cluster: ControlPlane, installed: Installed) -> None:
    """Rights read back from the API server's authorizer (RBAC as it evaluates it, bindings of every kind),
    not from the rendered manifests: beyond what any ServiceAccount holds, exactly the allowlist."""
    namespace = installed.namespace
    accounts = [
        account["metadata"]["name"]
        for account in cluster.get("serviceaccounts", "-n", namespace)["items"]
        if account["metadata"]["name"] != "default"
    ]
    assert accounts, "the chart created no ServiceAccount"
    with cluster.client() as client:
        # What any ServiceAccount holds with no binding at all (discovery, self reviews): the baseline.
        baseline = _rules_review(client, f"system:serviceaccount:{namespace}:berg-test-unbound", namespace)
        for account in accounts:
            user = f"system:serviceaccount:{namespace}:{account}"
            granted = _rules_review(client, user, namespace) - baseline
            component = account.removeprefix(f"{RELEASE}-")
            assert component in RBAC_ALLOWLIST, f"{account} is not in tests/delivery/rbac_allowlist.py"
            expected = {
                (group, resource, "*", verb)
                for rule in RBAC_ALLOWLIST[component]
                for group in rule["apiGroups"]
                for resource in rule["resources"]
                for verb in rule["verbs"]
            }
            assert granted == expected, f"{account} holds {sorted(granted)}, the allowlist says {sorted(expected)}"
            for group, resource in _PROBED_RESOURCES:
                for verb in _VERBS:
                    assert not _allowed(client, user, "kube-system", group, resource, verb), (
                        f"{account} may {verb} {resource} in another namespace"
                    )
                    if resource == "secrets":
                        assert not _allowed(client, user, namespace, group, resource, verb), (
                            f"{account} may {verb} Secrets it does not own"
                        )


def test_no_pod_mounts_a_service_account_token(cluster: ControlPlane, installed: Installed) -> None:
    """Nothing of Berg calls the API server, so no pod carries credentials for it."""
    mounted = [
        pod["metadata"]["name"]
        for pod in cluster.get("pods", "-n", installed.namespace)["items"]
        if any(volume["name"].startswith("kube-api-access") for volume in pod["spec"].get("volumes") or [])
    ]
    assert not mounted, f"pods with a mounted API token: {mounted}"
