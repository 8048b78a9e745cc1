"""Where the delivery checks find their tools, and one way to run them.

helm, checkov and hadolint are installed by ``scripts/bootstrap.sh test`` (``make test``) into ``.berg/tools/bin``;
kubectl comes from the machine. A missing tool fails the test that needs it, naming the fix; nothing is skipped.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = [
    "CHART",
    "CI_VALUES",
    "KUBE_VERSION",
    "REPO",
    "TOOLS_BIN",
    "require_tool",
    "run_tool",
]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "berg"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
TOOLS_BIN = REPO / ".berg" / "tools" / "bin"
KUBE_VERSION = "1.33.0"
"""The Kubernetes version the chart is rendered and validated for (its kubeVersion is >=1.29)."""

_INSTALL_HINTS = {
    "helm": "run scripts/bootstrap.sh test (it builds helm into .berg/tools/bin)",
    "checkov": "run scripts/bootstrap.sh test (it installs checkov into .berg/tools/bin)",
    "hadolint": "run scripts/bootstrap.sh test (it installs hadolint into .berg/tools/bin)",
    "kubectl": "install kubectl (its built-in kustomize renders k8s/); it is not part of scripts/bootstrap.sh",
}


def require_tool(name: str) -> str:
    """The path of ``name`` (.berg/tools/bin first, then PATH); fails the test with the fix when missing."""
    local = TOOLS_BIN / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {_INSTALL_HINTS[name]}", pytrace=False)
    return found


def run_tool(args: list[str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a tool from the repository root and capture its output (the caller checks the exit code)."""
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
