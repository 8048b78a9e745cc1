"""The operators' CustomResourceDefinitions the chart and ``k8s/`` need, at the versions they target.

- KServe: the CRDs of the release whose controller the tier runs (``scripts/cluster-tools.sh`` copies them from
  its Go module next to the controller), so the controller and its CRDs always match.
- prometheus-operator: its release's own CRD files (``example/prometheus-operator-crd``, from its Go module,
  fetched by ``scripts/cluster-tools.sh``).
- Knative Serving: the CRDs of the release KServe is built against, so KServe's controller turns a Knative-mode
  InferenceService into Knative Services (no Knative controller runs: they are not reconciled further).
- Strimzi: Strimzi publishes its CRD files only in release archives, not on Maven Central or a Go module; its
  CRDs are made here from the ``v1beta2`` schemas ``tests/delivery/crd_schemas`` generated with Strimzi's own
  crd-generator from the release's ``io.strimzi:api`` jar (their README), so the API server validates
  Strimzi resources exactly as that release's schema says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.controlplane import REPO, ControlPlane, cluster_tool

__all__ = ["install_operator_crds", "strimzi_crds"]

_SCHEMAS = REPO / "tests" / "delivery" / "crd_schemas"
_STRIMZI_SCALABLE = {"KafkaNodePool"}


def strimzi_crds() -> list[dict[str, Any]]:
    """One CRD per vendored Strimzi schema (kafka.strimzi.io, v1beta2, namespaced, with a status subresource)."""
    crds: list[dict[str, Any]] = []
    for path in sorted(_SCHEMAS.glob("kafka.strimzi.io_*_v1beta2.json")):
        kind = path.name.split("_")[1]
        schema = json.loads(path.read_text())
        schema.pop("x-berg-source", None)
        plural = f"{kind.lower()}s"
        subresources: dict[str, Any] = {"status": {}}
        if kind in _STRIMZI_SCALABLE:
            subresources["scale"] = {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.labelSelector",
            }
        crds.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.kafka.strimzi.io", "labels": {"app": "strimzi"}},
                "spec": {
                    "group": "kafka.strimzi.io",
                    "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
                    "scope": "Namespaced",
                    "versions": [
                        {
                            "name": "v1beta2",
                            "served": True,
                            "storage": True,
                            "schema": {"openAPIV3Schema": schema},
                            "subresources": subresources,
                        }
                    ],
                },
            }
        )
    return crds


def _yaml_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.yaml") if path.name != "kustomization.yaml")


def install_operator_crds(plane: ControlPlane) -> list[str]:
    """Apply every CRD and wait until each is Established; returns their names."""
    files = [
        # The CRD files themselves, not the kustomize patches beside them.
        *sorted((cluster_tool("kserve-config") / "crd" / "full").rglob("serving.kserve.io_*.yaml")),
        *_yaml_files(cluster_tool("prometheus-operator-crd")),
        *_yaml_files(cluster_tool("knative-serving-crd")),
    ]
    # kubectl reads the release files itself (YAML 1.2: PyYAML cannot read some of their enum values).
    applied = plane.kubectl(
        "apply", "--server-side", "-o", "name", *(argument for path in files for argument in ("-f", str(path)))
    ).stdout.split()
    applied += plane.kubectl(
        "apply", "--server-side", "-o", "name", "-f", "-", stdin=yaml.safe_dump_all(strimzi_crds())
    ).stdout.split()
    assert all(name.startswith("customresourcedefinition.") for name in applied), applied
    plane.kubectl("wait", "--for=condition=Established", "--timeout=300s", *applied)
    return [name.split("/", 1)[1] for name in applied]
