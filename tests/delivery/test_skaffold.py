"""skaffold.yaml builds every image and deploys the chart, with dev and prod profiles (checked statically)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.delivery.tools import CHART, REPO

pytestmark = pytest.mark.unit

SKAFFOLD: dict[str, Any] = yaml.safe_load((REPO / "skaffold.yaml").read_text())
SERVICES = sorted(path.parent.name for path in (REPO / "services").glob("*/pyproject.toml"))


def _template_key(image: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", image)


def test_schema_version() -> None:
    assert re.fullmatch(r"skaffold/v4beta\d+", SKAFFOLD["apiVersion"])
    assert SKAFFOLD["kind"] == "Config"


def _declared_args(dockerfile: str) -> set[str]:
    """The build arguments a Dockerfile declares (ARG NAME or ARG NAME=default, in any stage)."""
    lines = (REPO / dockerfile).read_text().splitlines()
    return {line.split()[1].split("=")[0] for line in lines if line.startswith("ARG ")}


def test_every_image_is_built() -> None:
    artifacts = {artifact["image"]: artifact for artifact in SKAFFOLD["build"]["artifacts"]}
    expected = {f"ghcr.io/berg-ml/berg-{service}": "services/Dockerfile" for service in SERVICES}
    expected["ghcr.io/berg-ml/berg-training"] = "pipelines/Dockerfile"
    assert {image: artifact["docker"]["dockerfile"] for image, artifact in artifacts.items()} == expected
    for artifact in artifacts.values():
        assert artifact.get("context", ".") == "."
        assert (REPO / artifact["docker"]["dockerfile"]).is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_image_names_its_service(service: str) -> None:
    """services/Dockerfile builds the service its SERVICE build argument names; every argument is one it declares."""
    (artifact,) = [a for a in SKAFFOLD["build"]["artifacts"] if a["image"] == f"ghcr.io/berg-ml/berg-{service}"]
    build_args = artifact["docker"].get("buildArgs", {})
    assert build_args.get("SERVICE") == service
    undeclared = set(build_args) - _declared_args(artifact["docker"]["dockerfile"])
    assert not undeclared, f"berg-{service}: build arguments the Dockerfile does not declare: {sorted(undeclared)}"


def test_serving_declares_its_grpc_port() -> None:
    (artifact,) = [a for a in SKAFFOLD["build"]["artifacts"] if a["image"] == "ghcr.io/berg-ml/berg-serving"]
    assert artifact["docker"]["buildArgs"]["PORTS"].split() == ["8080", "8081"]


def test_the_chart_gets_the_built_images() -> None:
    (release,) = SKAFFOLD["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"]).resolve() == CHART
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    templates = release["setValueTemplates"]
    for service in SERVICES:
        assert service in values, f"the chart has no values for {service}"
        key = _template_key(f"ghcr.io/berg-ml/berg-{service}")
        assert templates[f"{service}.image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
        assert templates[f"{service}.image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"
    key = _template_key("ghcr.io/berg-ml/berg-training")
    assert templates["kubeflowPipelines.trainingImage.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
    assert templates["kubeflowPipelines.trainingImage.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"


def test_profiles() -> None:
    profiles = {profile["name"]: profile for profile in SKAFFOLD["profiles"]}
    assert {"dev", "prod"} <= set(profiles)
    assert profiles["dev"]["build"]["local"]["push"] is False
    assert profiles["prod"]["build"]["local"]["push"] is True
    for profile in profiles.values():
        for patch in profile.get("patches", []):
            if patch["op"] == "add" and patch["path"].endswith("/valuesFiles"):
                assert all((REPO / path).is_file() for path in patch["value"])
