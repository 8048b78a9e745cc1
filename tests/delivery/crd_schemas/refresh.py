"""Refresh the vendored CRD schemas: ``uv run --locked python tests/delivery/crd_schemas/refresh.py``.

Downloads the operators' Go modules from the Go module proxy (``go mod download``), takes the
``openAPIV3Schema`` of each CRD the chart renders, drops the ``description`` texts (a third of the
size, no use to a validator) and writes ``<group>_<kind>_<version>.json`` beside this file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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


def main() -> None:
    for module, files in SOURCES.items():
        root = _module_dir(module)
        for relative in files:
            crd = yaml.load((root / relative).read_text(), Loader=_Loader)  # a SafeLoader
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = _strip_descriptions(version["schema"]["openAPIV3Schema"])
                schema["x-berg-source"] = f"{module} {relative}"
                target = HERE / f"{group}_{kind}_{version['name']}.json"
                target.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")
                print(f"{target.name}: {target.stat().st_size} bytes")  # noqa: T201


if __name__ == "__main__":
    main()
