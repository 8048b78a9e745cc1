"""Fixtures of the delivery checks: the chart rendered once per scenario (ci/*-values.yaml) per session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.tools import CHART, CI_VALUES, KUBE_VERSION, require_tool, run_tool

RELEASE = "berg"
NAMESPACE = "berg"
DEFAULT_SCENARIO = CHART / "ci" / "default-values.yaml"
"""The chart's defaults and the egress destinations production requires (the defaults alone are refused)."""


@dataclass(frozen=True)
class Rendered:
    """One scenario's `helm template` output: the file and its documents."""

    scenario: str
    path: Path
    documents: list[Mapping[str, Any]]

    def of_kind(self, kind: str) -> list[Mapping[str, Any]]:
        """The documents of one kind."""
        return [doc for doc in self.documents if doc["kind"] == kind]


def helm_template(helm: str, *extra: str) -> list[str]:
    """The `helm template` command line for the chart, release ``berg`` in namespace ``berg``."""
    return [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION, *extra]


@pytest.fixture(scope="session")
def helm() -> str:
    """The helm binary (scripts/bootstrap.sh builds it)."""
    return require_tool("helm")


@pytest.fixture(scope="session")
def rendered(helm: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    """Every ci/*-values.yaml scenario rendered once, by scenario name (``default``, ``minimal``...)."""
    out = tmp_path_factory.mktemp("rendered")
    scenarios: dict[str, Rendered] = {}
    for values in CI_VALUES:
        scenario = values.name.removesuffix("-values.yaml")
        result = run_tool(helm_template(helm, "--values", str(values)))
        assert result.returncode == 0, f"helm template with {values.name} failed:\n{result.stderr}"
        path = out / f"{scenario}.yaml"
        path.write_text(result.stdout)
        documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        scenarios[scenario] = Rendered(scenario, path, documents)
    return scenarios


@pytest.fixture(scope="session")
def rendered_dir(rendered: dict[str, Rendered]) -> Path:
    """The folder holding every scenario's rendered file (checkov scans it)."""
    return next(iter(rendered.values())).path.parent
