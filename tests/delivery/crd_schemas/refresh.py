"""Refresh the vendored CRD schemas: ``uv run --locked python tests/delivery/crd_schemas/refresh.py``.

Downloads the operators' Go modules from the Go module proxy (``go mod download``), takes the
``openAPIV3Schema`` of each CRD the chart renders, drops the ``description`` texts (a third of the
size, no use to a validator) and writes ``<group>_<kind>_<version>.json`` beside this file.

Strimzi is Java: its CRDs are generated from its model classes. Maven resolves ``io.strimzi:api`` and
``io.strimzi:crd-generator`` (with Strimzi's own dependency versions) from Maven Central, and
``io.strimzi.crdgenerator.CrdGenerator`` runs with the options Strimzi's ``api/pom.xml`` gives it for
``packaging/install/cluster-operator/04x-Crd-*.yaml``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent

KSERVE = "github.com/kserve/kserve@v0.20.0"
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

SOURCES: dict[str, list[str]] = {
    KSERVE: ["config/crd/full/serving.kserve.io_inferenceservices.yaml"],
    PROMETHEUS_OPERATOR: [
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_alertmanagerconfigs.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheuses.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_alertmanagers.yaml",
    ],
}


STRIMZI = "0.45.0"
"""The newest Strimzi release whose ``crd-generator`` is on Maven Central and whose API still serves
``kafka.strimzi.io/v1beta2`` (1.2.0, the next with a published generator, serves only v1)."""
STRIMZI_VERSIONS = {"v1beta2"}
"""The served versions vendored: the ones k8s/ uses (KafkaTopic and KafkaUser also serve v1alpha1 and v1beta1)."""
STRIMZI_OPTIONS = [
    "--label",
    "app:strimzi",
    "--label",
    "strimzi.io/crd-install:true",
    "--target-kube",
    "1.16+",
    "--crd-api-version",
    "v1",
    "--storage-version",
    "v1beta2",
]
"""Strimzi's api/pom.xml (exec-maven-plugin, executions generate-crd-co-install-v1 and -v1-eo) at 0.45.0."""
STRIMZI_CRDS: dict[str, dict[str, str]] = {
    # --api-versions: {model class: the file Strimzi ships it as}
    "v1beta2": {
        "io.strimzi.api.kafka.model.kafka.Kafka": "040-Crd-kafka.yaml",
        "io.strimzi.api.kafka.model.nodepool.KafkaNodePool": "04A-Crd-kafkanodepool.yaml",
    },
    "v1alpha1,v1beta1,v1beta2": {
        "io.strimzi.api.kafka.model.topic.KafkaTopic": "043-Crd-kafkatopic.yaml",
        "io.strimzi.api.kafka.model.user.KafkaUser": "044-Crd-kafkauser.yaml",
    },
}
STRIMZI_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>berg</groupId>
  <artifactId>strimzi-crds</artifactId>
  <version>0</version>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>io.strimzi</groupId><artifactId>strimzi</artifactId><version>{version}</version>
        <type>pom</type><scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>{version}</version></dependency>
    <dependency>
      <groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""
"""Both jars and their dependencies, at the versions Strimzi's parent pom (imported) builds with."""


class _Loader(yaml.SafeLoader):
    """PyYAML reads a bare ``=`` (an enum value of AlertmanagerConfig's matchType) as the obsolete
    ``!!value`` tag; it is the string ``=``."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]


def _module_dir(module: str) -> Path:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    result = subprocess.run(
        [go, "mod", "download", "-json", module],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    return Path(json.loads(result.stdout)["Dir"])


def _strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _strip_descriptions(value) for key, value in node.items() if key != "description"}
    if isinstance(node, list):
        return [_strip_descriptions(item) for item in node]
    return node


def _strimzi_crds(work: Path) -> Path:
    """Generate Strimzi's CRDs into ``work`` as Strimzi's build does; returns the directory."""
    (work / "pom.xml").write_text(STRIMZI_POM.format(version=STRIMZI))
    classpath = work / "classpath.txt"
    mvn = shutil.which("mvn") or "mvn"
    subprocess.run(
        # A checksum mismatch fails the fetch (Maven's default only warns): these jars generate the schemas.
        [
            mvn,
            "--batch-mode",
            "--quiet",
            "--strict-checksums",
            "dependency:build-classpath",
            f"-Dmdep.outputFile={classpath}",
        ],
        check=True,
        cwd=work,
    )
    out = work / "crds"
    out.mkdir()
    java = shutil.which("java") or "java"
    for api_versions, classes in STRIMZI_CRDS.items():
        targets = [f"{model}={out / name}" for model, name in classes.items()]
        subprocess.run(
            [
                java,
                "-classpath",
                classpath.read_text().strip(),
                "io.strimzi.crdgenerator.CrdGenerator",
                *STRIMZI_OPTIONS,
                "--api-versions",
                api_versions,
                "--yaml",
                *targets,
            ],
            check=True,
        )
    return out


def _write(crd: Any, source: str, versions: set[str] | None = None) -> None:
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for version in crd["spec"]["versions"]:
        if versions is not None and version["name"] not in versions:
            continue
        schema = _strip_descriptions(version["schema"]["openAPIV3Schema"])
        schema["x-berg-source"] = source
        target = HERE / f"{group}_{kind}_{version['name']}.json"
        target.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")
        print(f"{target.name}: {target.stat().st_size} bytes")  # noqa: T201


def main() -> None:
    for module, files in SOURCES.items():
        root = _module_dir(module)
        for relative in files:
            crd = yaml.load((root / relative).read_text(), Loader=_Loader)  # a SafeLoader
            _write(crd, f"{module} {relative}")
    with tempfile.TemporaryDirectory() as work:
        out = _strimzi_crds(Path(work))
        for classes in STRIMZI_CRDS.values():
            for name in classes.values():
                crd = yaml.load((out / name).read_text(), Loader=_Loader)  # a SafeLoader
                source = f"io.strimzi:api:{STRIMZI} io.strimzi:crd-generator:{STRIMZI} {name}"
                _write(crd, source, STRIMZI_VERSIONS)


if __name__ == "__main__":
    main()
