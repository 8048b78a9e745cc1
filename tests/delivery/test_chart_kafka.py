"""The chart's Kafka sign-in (kafka.auth): each service as its own user, its password from its own Secret only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from tests.delivery.conftest import DEFAULT_SCENARIO, Rendered, helm_template
from tests.delivery.manifests import PodTemplate, pod_templates
from tests.delivery.tools import CHART, CI_VALUES, run_tool

pytestmark = pytest.mark.integration

KAFKA_POD_COMPONENTS = {
    "Deployment/berg-ingestion": "ingestion",
    "Deployment/berg-validation": "validation",
    "Deployment/berg-features": "features",
    "Deployment/berg-monitoring": "monitoring",
    # The transformer writes the prediction log; the predictor reads no Kafka.
    "InferenceService/berg-serving/transformer": "serving",
}
"""The pods that talk to Kafka, and whose user they sign in as."""


def _values(scenario: str) -> Mapping[str, Any]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    path = next(path for path in CI_VALUES if path.name == f"{scenario}-values.yaml")
    kafka = (yaml.safe_load(path.read_text()) or {}).get("kafka", {})
    auth = {**values["kafka"]["auth"], **kafka.get("auth", {})}
    return auth


def _kafka_env(pod: PodTemplate) -> dict[str, Mapping[str, Any]]:
    """The pod's KAFKA__* variables that are not its ConfigMap's (the sign-in), by name without the prefix."""
    return {
        variable["name"].partition("_KAFKA__")[2]: variable
        for container in pod.spec.get("containers", [])
        for variable in container.get("env") or []
        if "_KAFKA__" in variable["name"]
    }


def test_the_production_scenario_signs_each_service_in_as_its_own_user(rendered: dict[str, Rendered]) -> None:
    auth = _values("production")
    assert auth["mechanism"] == "scram-sha-512"
    pods = {pod.owner: pod for pod in pod_templates(rendered["production"].documents)}
    assert set(KAFKA_POD_COMPONENTS) <= set(pods)
    secrets = {user["existingSecret"] for user in auth["users"].values()}
    assert len(secrets) == len(auth["users"]), "the scenario must give each service a Secret of its own"
    for owner, pod in pods.items():
        env = _kafka_env(pod)
        component = KAFKA_POD_COMPONENTS.get(owner)
        if component is None:
            assert not env, f"{owner} reads no Kafka, yet gets {sorted(env)}"
            continue
        user = auth["users"][component]
        assert env["SECURITY_PROTOCOL"]["value"] == "SASL_PLAINTEXT", owner
        assert env["SASL_MECHANISM"]["value"] == "SCRAM-SHA-512", owner
        assert env["SASL_USERNAME"]["value"] == user["username"], owner
        assert env["SASL_PASSWORD"]["valueFrom"] == {
            "secretKeyRef": {"name": user["existingSecret"], "key": "password"}
        }, owner
        # No other service's Kafka password reaches this pod, by any variable.
        referenced = {
            variable["valueFrom"]["secretKeyRef"]["name"]
            for container in pod.spec.get("containers", [])
            for variable in container.get("env") or []
            if "secretKeyRef" in variable.get("valueFrom", {})
        }
        assert referenced & secrets == {user["existingSecret"]}, owner


@pytest.mark.parametrize("scenario", ["minimal", "canary"])
def test_without_kafka_auth_nothing_changes(rendered: dict[str, Rendered], scenario: str) -> None:
    """mechanism `none` (the default: development, or no Kafka at all) sets no sign-in: PLAINTEXT as before."""
    assert _values(scenario)["mechanism"] == "none"
    for pod in pod_templates(rendered[scenario].documents):
        assert not _kafka_env(pod), pod.owner


def test_the_default_scenario_signs_in_with_strimzis_user_secrets(rendered: dict[str, Rendered]) -> None:
    """The default scenario (production, against k8s/'s Strimzi cluster) signs in with the Secrets Strimzi's user
    operator writes, named after each KafkaUser."""
    auth = _values("default")
    assert auth["mechanism"] == "scram-sha-512"
    for pod in pod_templates(rendered["default"].documents):
        component = KAFKA_POD_COMPONENTS.get(pod.owner)
        env = _kafka_env(pod)
        if component is None:
            assert not env, pod.owner
            continue
        assert env["SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"berg-{component}", pod.owner


def test_production_refuses_no_kafka_sign_in(helm: str) -> None:
    result = run_tool(helm_template(helm, "--values", str(DEFAULT_SCENARIO), "--set", "kafka.auth.mechanism=none"))
    assert result.returncode != 0, "production rendered services without a Kafka sign-in"
    assert "kafka.auth.mechanism is none and global.environment is production" in result.stderr, result.stderr
