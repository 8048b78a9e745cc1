"""The Helm chart rendered with every ci/*-values.yaml scenario: lint, schemas, security, wiring."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

from tests.delivery.conftest import DEFAULT_SCENARIO, NAMESPACE, Rendered, helm_template
from tests.delivery.manifests import PodTemplate, crd_validator, pod_templates, selector_matches
from tests.delivery.rbac_allowlist import RBAC_ALLOWLIST, Rule
from tests.delivery.tools import CHART, CI_VALUES, KUBE_VERSION, REPO, run_tool

pytestmark = pytest.mark.integration

SCENARIOS = ("canary", "default", "minimal", "production")
RULES_FILE = REPO / "app" / "src" / "berg_app" / "stack" / "resources" / "prometheus" / "berg.rules.yml"
COPIES = {
    "files/berg.rules.yml": RULES_FILE,
    "files/training.yaml": REPO / "pipelines" / "compiled" / "training.yaml",
    "files/feature_store.yaml": REPO / "feature_repo" / "cluster" / "feature_store.yaml",
}
CUSTOM_RESOURCES = {
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig"),
}
ON_DEFAULT = ("--values", str(DEFAULT_SCENARIO))
"""Flags rendering the default scenario, which the tests of one value at a time start from."""
PRODUCTION = CHART / "ci" / "production-values.yaml"
SAFE_VOLUMES = {"configMap", "emptyDir", "secret", "persistentVolumeClaim", "projected", "downwardAPI", "ephemeral"}


def scenario_params() -> list[Any]:
    return [pytest.param(scenario, id=scenario) for scenario in SCENARIOS]


def test_every_scenario_is_rendered(rendered: dict[str, Rendered]) -> None:
    assert sorted(rendered) == sorted(SCENARIOS), f"ci/ scenarios changed: {[path.name for path in CI_VALUES]}"
    for scenario in rendered.values():
        assert all(doc["metadata"].get("namespace") == NAMESPACE for doc in scenario.documents), (
            f"{scenario.scenario}: an object without the release namespace"
        )


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda v: v.name)
def test_helm_lint(helm: str, values: Path) -> None:
    result = run_tool([helm, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, "--values", str(values)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scenario", scenario_params())
def test_manifests_match_kubernetes_schemas(rendered: dict[str, Rendered], scenario: str) -> None:
    problems = []
    for doc in rendered[scenario].documents:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
            continue
        try:
            kubernetes_validate.validate(dict(doc), KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message} at {list(error.path)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("scenario", scenario_params())
def test_custom_resources_match_their_crds(rendered: dict[str, Rendered], scenario: str) -> None:
    problems = []
    kinds = set()
    for doc in rendered[scenario].documents:
        api_version, kind = doc["apiVersion"], doc["kind"]
        if (api_version, kind) not in CUSTOM_RESOURCES:
            continue
        kinds.add(kind)
        group, _, version = api_version.rpartition("/")
        for error in crd_validator(group, kind, version).iter_errors(dict(doc)):
            problems.append(f"{kind}/{doc['metadata']['name']}: {error.message} at {list(error.absolute_path)}")
    assert not problems, "\n".join(problems)
    assert kinds, f"{scenario} renders no custom resource"


def _effective(pod: Mapping[str, Any], container: Mapping[str, Any], key: str) -> Any:
    container_context = container.get("securityContext", {})
    if key in container_context:
        return container_context[key]
    return pod.get("securityContext", {}).get(key)


def _containers(pod: PodTemplate) -> list[Mapping[str, Any]]:
    return [
        *pod.spec.get("initContainers", []),
        *pod.spec.get("containers", []),
        *pod.spec.get("ephemeralContainers", []),
    ]


@pytest.mark.parametrize("scenario", scenario_params())
def test_pod_security_standard_restricted(rendered: dict[str, Rendered], scenario: str) -> None:
    pods = list(pod_templates(rendered[scenario].documents))
    assert pods
    problems = []
    for pod in pods:
        spec = pod.spec
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(host):
                problems.append(f"{pod.owner}: {host}")
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            if not kinds <= SAFE_VOLUMES:
                problems.append(f"{pod.owner}: volume {volume['name']} of type {kinds}")
        if spec.get("securityContext", {}).get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{pod.owner}: pod seccompProfile is not RuntimeDefault")
        for container in _containers(pod):
            name = f"{pod.owner}/{container['name']}"
            context = container.get("securityContext", {})
            if _effective(spec, container, "runAsNonRoot") is not True:
                problems.append(f"{name}: runAsNonRoot is not true")
            if _effective(spec, container, "runAsUser") in (0, None):
                problems.append(f"{name}: no non-zero runAsUser")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: allowPrivilegeEscalation is not false")
            if context.get("privileged"):
                problems.append(f"{name}: privileged")
            if "ALL" not in context.get("capabilities", {}).get("drop", []):
                problems.append(f"{name}: capabilities do not drop ALL")
            if context.get("capabilities", {}).get("add"):
                problems.append(f"{name}: adds capabilities")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}: the root filesystem is writable")
            seccomp = context.get("seccompProfile", spec.get("securityContext", {}).get("seccompProfile", {}))
            if seccomp.get("type") != "RuntimeDefault":
                problems.append(f"{name}: seccompProfile is not RuntimeDefault")
            if any("hostPort" in port for port in container.get("ports", [])):
                problems.append(f"{name}: hostPort")
            mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
            # The helm test Pod only runs curl; everything else gets a writable /tmp.
            if not pod.owner.startswith("Pod/") and "/tmp" not in mounts:
                problems.append(f"{name}: no writable /tmp under the read-only root")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("scenario", scenario_params())
def test_no_pod_gets_a_service_account_token(rendered: dict[str, Rendered], scenario: str) -> None:
    """No Berg pod calls the Kubernetes API, so none carries a token, automounted or projected."""
    accounts = {account["metadata"]["name"]: account for account in rendered[scenario].of_kind("ServiceAccount")}
    assert accounts
    for name, account in accounts.items():
        assert account.get("automountServiceAccountToken") is False, name
    for pod in pod_templates(rendered[scenario].documents):
        assert pod.spec.get("automountServiceAccountToken") is False, pod.owner
        assert pod.spec.get("serviceAccountName") in accounts, f"{pod.owner} runs as a ServiceAccount the chart lacks"
        projected = [
            source
            for volume in pod.spec.get("volumes", [])
            for source in volume.get("projected", {}).get("sources", [])
            if "serviceAccountToken" in source
        ]
        assert not projected, f"{pod.owner} projects a ServiceAccount token"


@pytest.mark.parametrize("scenario", scenario_params())
def test_long_running_containers_have_probes(rendered: dict[str, Rendered], scenario: str) -> None:
    for pod in pod_templates(rendered[scenario].documents):
        if pod.owner.startswith(("Job/", "Pod/")):
            continue
        for container in pod.spec["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{pod.owner}/{container['name']} has no {probe}"
            assert container["resources"].get("limits"), f"{pod.owner}: no resource limits"
            assert container["resources"].get("requests"), f"{pod.owner}: no resource requests"


@pytest.mark.parametrize("scenario", scenario_params())
def test_every_pod_is_covered_by_network_policies(rendered: dict[str, Rendered], scenario: str) -> None:
    """Each pod is selected by a default-deny policy (both directions, no rules) and by an explicit allow."""
    policies = rendered[scenario].of_kind("NetworkPolicy")
    deny = [
        policy
        for policy in policies
        if set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    ]
    assert len(deny) == 1, "one default-deny NetworkPolicy (Ingress and Egress, no rules)"
    for pod in pod_templates(rendered[scenario].documents):
        matching = [policy for policy in policies if selector_matches(policy["spec"]["podSelector"], pod.labels)]
        assert deny[0] in matching, f"{pod.owner} escapes the default deny"
        allows = [policy for policy in matching if policy is not deny[0]]
        assert allows, f"{pod.owner} has no NetworkPolicy allowing its traffic"
        egress_ports = {
            port["port"]
            for policy in allows
            for rule in policy["spec"].get("egress", [])
            for port in rule.get("ports", [])
        }
        assert 53 in egress_ports, f"{pod.owner} cannot resolve names (no DNS egress)"
    for policy in policies:
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            assert rule.get("ports"), f"{policy['metadata']['name']}: a rule open on every port"


def test_prometheus_and_alertmanager_are_allowed_in(rendered: dict[str, Rendered]) -> None:
    policies = {policy["metadata"]["name"]: policy for policy in rendered["default"].of_kind("NetworkPolicy")}
    for component in ("ingestion", "validation", "features", "monitoring", "controller", "serving"):
        sources = [peer for rule in policies[f"berg-{component}"]["spec"]["ingress"] for peer in rule["from"]]
        assert {"app.kubernetes.io/name": "prometheus"} in [
            peer.get("podSelector", {}).get("matchLabels") for peer in sources
        ]
    controller = [peer for rule in policies["berg-controller"]["spec"]["ingress"] for peer in rule["from"]]
    assert {"app.kubernetes.io/name": "alertmanager"} in [
        peer.get("podSelector", {}).get("matchLabels") for peer in controller
    ]


def _granted(documents: list[Mapping[str, Any]]) -> dict[str, list[Rule]]:
    """The rules each ServiceAccount of the release namespace is bound to, by its name."""
    roles = {doc["metadata"]["name"]: doc.get("rules", []) for doc in documents if doc["kind"] == "Role"}
    granted: dict[str, list[Rule]] = {}
    for binding in (doc for doc in documents if doc["kind"] == "RoleBinding"):
        name = binding["metadata"]["name"]
        assert binding["roleRef"]["kind"] == "Role", f"RoleBinding/{name} binds a ClusterRole"
        for subject in binding.get("subjects", []):
            assert subject["kind"] == "ServiceAccount", f"RoleBinding/{name} binds a {subject['kind']}"
            assert subject.get("namespace") == NAMESPACE, f"RoleBinding/{name} binds another namespace's account"
            granted.setdefault(subject["name"], []).extend(roles[binding["roleRef"]["name"]])
    return granted


def _environment(scenario: str) -> str:
    values = yaml.safe_load((CHART / "ci" / f"{scenario}-values.yaml").read_text()) or {}
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return str(values.get("global", {}).get("environment", defaults["global"]["environment"]))


def _egress_to_any_address(documents: list[Mapping[str, Any]]) -> list[str]:
    return [
        f"{policy['metadata']['name']}: ports {[port['port'] for port in rule['ports']]}"
        for policy in documents
        if policy["kind"] == "NetworkPolicy"
        for rule in policy["spec"].get("egress", [])
        if not rule.get("to")
    ]


@pytest.mark.parametrize("scenario", scenario_params())
def test_production_egress_names_every_destination(rendered: dict[str, Rendered], scenario: str) -> None:
    """In production every egress rule has a destination; elsewhere an unnamed endpoint stays any address."""
    open_rules = _egress_to_any_address(rendered[scenario].documents)
    if _environment(scenario) == "production":
        assert not open_rules, f"egress to any address in production: {open_rules}"
    else:
        assert open_rules, f"{scenario} (development) leaves endpoints unnamed; their rules should still render"


@pytest.mark.parametrize(
    ("endpoint", "flags"),
    [
        ("kafka", ["--set-json", "networkPolicy.egress.kafka.cidrs=[]"]),
        ("redis", ["--set-json", "networkPolicy.egress.redis.cidrs=[]"]),
        ("postgresql", ["--set-json", "networkPolicy.egress.postgresql.cidrs=[]"]),
        ("objectStorage", ["--set-json", "networkPolicy.egress.objectStorage.cidrs=[]"]),
        (
            "kubeflowPipelines",
            [
                "--set",
                "networkPolicy.egress.kubeflowPipelines.namespaceLabels.kubernetes\\.io/metadata\\.name=null",
                "--set",
                "networkPolicy.egress.kubeflowPipelines.podLabels.app=null",
            ],
        ),
    ],
    ids=["kafka", "redis", "postgresql", "objectStorage", "kubeflowPipelines"],
)
def test_production_refuses_an_egress_without_destination(helm: str, endpoint: str, flags: list[str]) -> None:
    result = run_tool(helm_template(helm, "--values", str(PRODUCTION), *flags))
    assert result.returncode != 0, f"helm template accepted production without networkPolicy.egress.{endpoint}"
    assert f"networkPolicy.egress.{endpoint} has no destination and global.environment is production" in (
        result.stderr
    ), result.stderr
    development = run_tool(
        helm_template(helm, "--values", str(PRODUCTION), *flags, "--set", "global.environment=development")
    )
    assert development.returncode == 0, development.stderr


def test_production_refuses_the_defaults_unnamed_endpoints(helm: str) -> None:
    """The defaults leave Redis, PostgreSQL and object storage unnamed; production (the default) says which
    (with the Kafka sign-in production also requires, so the egress is what is refused)."""
    result = run_tool(helm_template(helm, "--set", "kafka.auth.mechanism=scram-sha-512"))
    assert result.returncode != 0, "the chart's defaults rendered egress to any address in production"
    assert re.search(
        r"networkPolicy\.egress\.(redis|postgresql|objectStorage) has no destination "
        r"and global\.environment is production",
        result.stderr,
    ), result.stderr
    development = run_tool(helm_template(helm, "--set", "global.environment=development"))
    assert development.returncode == 0, development.stderr
    assert _egress_to_any_address([doc for doc in yaml.safe_load_all(development.stdout) if doc])


def test_only_the_enabled_components_destinations_are_required(helm: str) -> None:
    """Serving alone never reaches Kubeflow Pipelines: an unnamed KFP endpoint is no reason to refuse it."""
    minimal = CHART / "ci" / "minimal-values.yaml"
    kfp = "networkPolicy.egress.kubeflowPipelines"
    flags = [
        "--set",
        f"{kfp}.namespaceLabels.kubernetes\\.io/metadata\\.name=null",
        "--set",
        f"{kfp}.podLabels.app=null",
    ]
    result = run_tool(helm_template(helm, "--values", str(minimal), *flags))
    assert result.returncode == 0, result.stderr
    assert not _egress_to_any_address([doc for doc in yaml.safe_load_all(result.stdout) if doc])
    with_controller = run_tool(
        helm_template(helm, "--values", str(minimal), *flags, "--set", "controller.enabled=true")
    )
    assert f"{kfp} has no destination" in with_controller.stderr, with_controller.stderr


@pytest.mark.parametrize("scenario", scenario_params())
def test_rbac_is_the_allowlist(rendered: dict[str, Rendered], scenario: str) -> None:
    documents = rendered[scenario].documents
    assert not [doc for doc in documents if doc["kind"] in ("ClusterRole", "ClusterRoleBinding")], (
        "no cluster-wide RBAC"
    )
    accounts = {doc["metadata"]["name"] for doc in documents if doc["kind"] == "ServiceAccount"}
    suffixes = {name: name.removeprefix("berg-") for name in accounts}
    unknown = sorted(suffix for suffix in suffixes.values() if suffix not in RBAC_ALLOWLIST)
    assert not unknown, f"ServiceAccounts missing from rbac_allowlist.RBAC_ALLOWLIST: {unknown}"
    granted = _granted(documents)
    assert set(granted) <= accounts, f"bindings to ServiceAccounts the chart does not render: {set(granted) - accounts}"
    assert {name: granted.get(name, []) for name in accounts} == {
        name: RBAC_ALLOWLIST[suffix] for name, suffix in suffixes.items()
    }
    bound = {doc["roleRef"]["name"] for doc in documents if doc["kind"] == "RoleBinding"}
    unused = [
        doc["metadata"]["name"] for doc in documents if doc["kind"] == "Role" and doc["metadata"]["name"] not in bound
    ]
    assert not unused, f"Roles bound to nothing: {unused}"


@pytest.mark.parametrize("copy", sorted(COPIES))
def test_chart_copies_equal_their_sources(copy: str) -> None:
    source = COPIES[copy]
    assert source.is_file(), f"{source.relative_to(REPO)} is missing"
    assert (CHART / copy).read_bytes() == source.read_bytes(), (
        f"helm/berg/{copy} differs from {source.relative_to(REPO)}; re-sync it: "
        f"cp {source.relative_to(REPO)} helm/berg/{copy}"
    )


def test_prometheus_rule_carries_the_rules_file(rendered: dict[str, Rendered]) -> None:
    (rule,) = rendered["default"].of_kind("PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text())["groups"]


def _executor_images(pipeline: Mapping[str, Any]) -> set[str]:
    executors = pipeline["deploymentSpec"]["executors"]
    return {executor["container"]["image"] for executor in executors.values()}


def _without_images(pipeline: dict[str, Any]) -> dict[str, Any]:
    for executor in pipeline["deploymentSpec"]["executors"].values():
        executor["container"].pop("image")
    return pipeline


def test_configmaps_carry_the_pipeline_and_the_feature_store(rendered: dict[str, Rendered]) -> None:
    maps = {doc["metadata"]["name"]: doc["data"] for doc in rendered["default"].of_kind("ConfigMap")}
    delivered = yaml.safe_load(maps["berg-pipeline"]["training.yaml"])
    compiled = yaml.safe_load(COPIES["files/training.yaml"].read_text())
    assert _without_images(delivered) == _without_images(compiled)
    assert maps["berg-feature-store"]["feature_store.yaml"] == COPIES["files/feature_store.yaml"].read_text()


def _use_case_by_component(documents: list[Mapping[str, Any]]) -> dict[str, str | None]:
    settings = [
        doc for doc in documents if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-settings")
    ]
    return {doc["metadata"]["name"]: doc["data"].get("BERG_USE_CASE") for doc in settings}


def test_one_value_selects_the_use_case_of_every_component(helm: str, rendered: dict[str, Rendered]) -> None:
    default = _use_case_by_component(rendered["default"].documents)
    assert len(default) >= 6, f"a settings ConfigMap per component, got {sorted(default)}"
    assert set(default.values()) == {"fraud"}, default
    result = run_tool(helm_template(helm, *ON_DEFAULT, "--set", "useCase=clicks"))
    assert result.returncode == 0, result.stderr
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert _use_case_by_component(documents) == dict.fromkeys(default, "clicks")
    # The model served and watched is the one the use case's pipeline trains, unless named apart.
    assert _served_models(documents) == {"serving": "clicks", "controller": '["clicks"]'}
    named = run_tool(helm_template(helm, *ON_DEFAULT, "--set", "useCase=clicks", "--set", "serving.modelName=ctr"))
    assert named.returncode == 0, named.stderr
    assert _served_models([doc for doc in yaml.safe_load_all(named.stdout) if doc]) == {
        "serving": "ctr",
        "controller": '["ctr"]',
    }


def _served_models(documents: list[Mapping[str, Any]]) -> dict[str, str]:
    settings = {
        doc["metadata"]["name"]: doc["data"]
        for doc in documents
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-settings")
    }
    return {
        "serving": next(data["BERG_SERVING_MODEL_NAME"] for name, data in settings.items() if "serving" in name),
        "controller": next(data["BERG_CONTROLLER_MODELS"] for name, data in settings.items() if "controller" in name),
    }


@pytest.mark.parametrize("scenario", ["default", "production"])
def test_the_pipeline_runs_in_the_releases_training_image(rendered: dict[str, Rendered], scenario: str) -> None:
    """Every step of the delivered pipeline, and the upload Job, run in kubeflowPipelines.trainingImage.

    The compiled file names the release tag; skaffold's build (a digest) is only known at deploy time.
    """
    documents = rendered[scenario]
    (pipeline_map,) = [doc for doc in documents.of_kind("ConfigMap") if doc["metadata"]["name"] == "berg-pipeline"]
    (upload,) = [doc for doc in documents.of_kind("Job") if doc["metadata"]["name"] == "berg-pipeline-upload"]
    (job_image,) = {container["image"] for container in upload["spec"]["template"]["spec"]["containers"]}
    assert _executor_images(yaml.safe_load(pipeline_map["data"]["training.yaml"])) == {job_image}
    compiled = _executor_images(yaml.safe_load(COPIES["files/training.yaml"].read_text()))
    if scenario == "production":
        assert job_image.endswith("@sha256:" + "7" * 64)
        assert compiled != {job_image}


def test_dashboards_become_configmaps(rendered: dict[str, Rendered]) -> None:
    files = sorted((CHART / "dashboards").glob("*.json"))
    maps = [
        doc for doc in rendered["default"].of_kind("ConfigMap") if doc["metadata"]["labels"].get("grafana_dashboard")
    ]
    assert len(maps) == len(files)
    by_key = {key: value for doc in maps for key, value in doc["data"].items()}
    for path in files:
        assert json.loads(by_key[path.name]) == json.loads(path.read_text()), path.name
    assert all(doc["metadata"]["labels"]["grafana_dashboard"] == "1" for doc in maps)


def test_service_monitors_label_metrics_with_the_service(rendered: dict[str, Rendered]) -> None:
    monitors = rendered["default"].of_kind("ServiceMonitor")
    services = {doc["metadata"]["name"]: doc for doc in rendered["default"].of_kind("Service")}
    assert {monitor["metadata"]["name"].removeprefix("berg-") for monitor in monitors} == {
        "ingestion",
        "validation",
        "features",
        "serving",
        "monitoring",
        "controller",
    }
    for monitor in monitors:
        service = monitor["metadata"]["name"].removeprefix("berg-")
        (endpoint,) = monitor["spec"]["endpoints"]
        assert {"action": "replace", "targetLabel": "service", "replacement": service} in endpoint["relabelings"]
        targets = [
            s for s in services.values() if selector_matches(monitor["spec"]["selector"], s["metadata"]["labels"])
        ]
        assert len(targets) == 1, f"{service}: the ServiceMonitor selects {len(targets)} Services"
        assert endpoint["port"] in {port["name"] for port in targets[0]["spec"]["ports"]}


def test_alertmanager_routes_retraining_alerts_to_the_controller(rendered: dict[str, Rendered]) -> None:
    (config,) = rendered["default"].of_kind("AlertmanagerConfig")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    (matcher,) = config["spec"]["route"]["matchers"]
    assert matcher["value"].split("|") == values["controller"]["triggerAlerts"]
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES_FILE.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert set(values["controller"]["triggerAlerts"]) <= alerts, "a trigger alert the rules do not define"
    (receiver,) = config["spec"]["receivers"]
    (webhook,) = receiver["webhookConfigs"]
    assert webhook["url"].startswith("http://berg-controller.berg.svc.cluster.local:8080/")
    assert webhook["httpConfig"]["authorization"]["credentials"] == {"name": "berg-controller-webhook", "key": "token"}
    (deployment,) = [d for d in rendered["default"].of_kind("Deployment") if d["metadata"]["name"] == "berg-controller"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["webhook-token"]["secret"]["secretName"] == "berg-controller-webhook", "one Secret for both sides"


@pytest.mark.parametrize("scenario", scenario_params())
def test_no_secret_literals(rendered: dict[str, Rendered], scenario: str) -> None:
    """Secrets are referenced by name; the chart renders no Secret and no credential-looking value."""
    assert not rendered[scenario].of_kind("Secret")
    for pod in pod_templates(rendered[scenario].documents):
        for container in _containers(pod):
            for variable in container.get("env") or []:
                sensitive = any(
                    word in variable["name"]
                    for word in ("PASSWORD", "TOKEN", "SECRET", "DATABASE_URL", "REDIS", "REGISTRY_URL")
                )
                if sensitive and not variable["name"].endswith("_FILE"):
                    assert "valueFrom" in variable, f"{pod.owner}: {variable['name']} is a literal"


def test_serving_is_an_inference_service(rendered: dict[str, Rendered]) -> None:
    (isvc,) = rendered["default"].of_kind("InferenceService")
    predictor, transformer = isvc["spec"]["predictor"], isvc["spec"]["transformer"]
    assert predictor["containers"][0]["args"] == ["--shape", "predictor"]
    assert transformer["containers"][0]["args"] == ["--shape", "transformer"]
    assert "canaryTrafficPercent" not in predictor
    (canary,) = rendered["canary"].of_kind("InferenceService")
    assert canary["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 20
    (fused,) = rendered["minimal"].of_kind("InferenceService")
    assert "transformer" not in fused["spec"]
    assert fused["spec"]["predictor"]["containers"][0]["args"] == ["--shape", "fused"]


def test_minimal_renders_serving_only(rendered: dict[str, Rendered]) -> None:
    pods = {pod.owner for pod in pod_templates(rendered["minimal"].documents)}
    assert pods == {"InferenceService/berg-serving/predictor", "Pod/berg-test-health"}


def test_production_images_are_pinned_by_digest(rendered: dict[str, Rendered]) -> None:
    for pod in pod_templates(rendered["production"].documents):
        for container in _containers(pod):
            assert "@sha256:" in container["image"], f"{pod.owner}: {container['image']}"
            assert container["image"].startswith("registry.example.com/berg/")


def _claims_mounted(documents: list[Mapping[str, Any]]) -> dict[str, str]:
    """The claim each pod mounts at /var/lib/berg (its ``state`` volume), by pod; pods without one left out."""
    return {
        pod.owner: volume["persistentVolumeClaim"]["claimName"]
        for pod in pod_templates(documents)
        for volume in pod.spec.get("volumes", [])
        if volume["name"] == "state" and "persistentVolumeClaim" in volume
    }


@pytest.mark.parametrize("scenario", scenario_params())
def test_every_mounted_claim_is_rendered(rendered: dict[str, Rendered], scenario: str) -> None:
    """A scenario installs on an empty namespace: a pod mounting a claim nothing creates would stay Pending."""
    claims = {doc["metadata"]["name"] for doc in rendered[scenario].of_kind("PersistentVolumeClaim")}
    missing = {
        owner: claim for owner, claim in _claims_mounted(rendered[scenario].documents).items() if claim not in claims
    }
    assert not missing, f"pods mount claims the chart does not create: {missing}"


def test_production_creates_its_shared_claim(rendered: dict[str, Rendered]) -> None:
    documents = rendered["production"].documents
    (claim,) = rendered["production"].of_kind("PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "berg-shared"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "berg-shared",
        "resources": {"requests": {"storage": "10Gi"}},
    }
    deployments = {
        f"Deployment/berg-{name}" for name in ("ingestion", "validation", "features", "monitoring", "controller")
    }
    mounted = _claims_mounted(documents)
    assert deployments <= set(mounted), f"Deployments without the shared claim: {deployments - set(mounted)}"
    assert set(mounted.values()) == {"berg-shared"}


def test_an_existing_claim_is_mounted_and_not_created(helm: str) -> None:
    result = run_tool(helm_template(helm, *ON_DEFAULT, "--set", "storage.existingClaim=team-volume"))
    assert result.returncode == 0, result.stderr
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert not [doc for doc in documents if doc["kind"] == "PersistentVolumeClaim"]
    mounted = _claims_mounted(documents)
    assert "Deployment/berg-controller" in mounted
    assert set(mounted.values()) == {"team-volume"}


def test_without_a_claim_state_is_an_empty_dir(rendered: dict[str, Rendered]) -> None:
    assert not rendered["default"].of_kind("PersistentVolumeClaim")
    assert not _claims_mounted(rendered["default"].documents)


def test_serving_reads_the_feature_registry_with_its_own_login(rendered: dict[str, Rendered]) -> None:
    keys: dict[str, set[str]] = {}
    for pod in pod_templates(rendered["production"].documents):
        for container in pod.spec["containers"]:
            for variable in container.get("env") or []:
                if variable["name"] == "BERG_FEAST_REGISTRY_URL":
                    keys.setdefault(variable["valueFrom"]["secretKeyRef"]["key"], set()).add(pod.owner)
    assert keys == {
        "registry-url": {"Deployment/berg-features"},
        "registry-url-readonly": {"InferenceService/berg-serving/transformer"},
    }


def test_production_gives_each_component_its_own_object_storage_key(rendered: dict[str, Rendered]) -> None:
    users: dict[str, set[str]] = {}
    for pod in pod_templates(rendered["production"].documents):
        for container in pod.spec["containers"]:
            for source in container.get("envFrom") or []:
                name = (source.get("secretRef") or {}).get("name", "")
                if name.startswith("berg-object-storage"):
                    users.setdefault(name, set()).add(pod.owner.split("/")[1])
    assert users == {
        "berg-object-storage-controller": {"berg-controller"},
        "berg-object-storage-features": {"berg-features"},
        "berg-object-storage-monitoring": {"berg-monitoring"},
        "berg-object-storage-serving": {"berg-serving"},
    }


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--set", "ingestion.replicaz=3"], "replicaz"),
        (["--set", "serving.shape=split"], "shape"),
        (["--set", "global.imagePullPolicy=Sometimes"], "imagePullPolicy"),
        (["--set", "serving.canary.enabled=true"], "Knative"),
        (
            ["--set", "ingestion.autoscaling.maxReplicas=1", "--set", "ingestion.autoscaling.minReplicas=2"],
            "maxReplicas",
        ),
        (["--set-string", "ingestion.settings.lower_case=1"], "lower_case"),
        (["--set", "useCase=Card Fraud"], "useCase"),
        (
            ["--set", "storage.existingClaim=team-volume", "--set", "storage.persistentVolumeClaim.create=true"],
            "storage.existingClaim (team-volume) and storage.persistentVolumeClaim.create are both set",
        ),
        (["--set-json", "storage.persistentVolumeClaim.accessModes=[]"], "accessModes"),
        # KServe's own webhook refuses these (the cluster tier met it): Standard mode scales on cpu or memory,
        # Knative mode on concurrency or rps.
        (["--set", "serving.predictor.scaleMetric=concurrency"], "serving.predictor.scaleMetric=concurrency"),
        (
            ["--set", "featureStore.servingRegistryKey=registry-url"],
            "featureStore.servingRegistryKey is registry-url, the features service's registry login",
        ),
        (
            ["--set", "objectStorage.existingSecret=shared"],
            "objectStorage: controller and features would share the Secret shared",
        ),
        (
            ["--set", "serving.deploymentMode=Knative", "--set", "serving.predictor.scaleMetric=concurrency"],
            "serving.transformer.scaleMetric=cpu: KServe scales Knative mode on concurrency, rps only",
        ),
    ],
    ids=[
        "unknown-key",
        "enum",
        "pull-policy",
        "canary-needs-knative",
        "hpa-bounds",
        "settings-names",
        "use-case-name",
        "two-shared-claims",
        "claim-without-access-mode",
        "standard-scales-on-resources",
        "serving-writes-the-feature-registry-in-production",
        "shared-object-storage-key-in-production",
        "knative-scales-on-requests",
    ],
)
def test_bad_values_are_refused(helm: str, flags: list[str], complaint: str) -> None:
    result = run_tool(helm_template(helm, *ON_DEFAULT, *flags))
    assert result.returncode != 0, f"helm template accepted {flags}"
    assert complaint in result.stderr, result.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda v: v.name)
def test_notes_render(helm: str, tmp_path: Path, values: Path) -> None:
    """`helm template` skips NOTES.txt; a copy of the chart renders it inside a ConfigMap to catch its errors."""
    chart = tmp_path / "berg"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes.tpl")
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  notes: |\n{{ tpl (.Files.Get "notes.tpl") . | indent 4 }}\n'
    )
    command = [helm, "template", "berg", str(chart), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    result = run_tool([*command, "--values", str(values), "--show-only", "templates/notes.yaml"])
    assert result.returncode == 0, result.stderr
    notes = yaml.safe_load(result.stdout)["data"]["notes"]
    assert "helm test berg -n berg" in notes
    assert "{{" not in notes
