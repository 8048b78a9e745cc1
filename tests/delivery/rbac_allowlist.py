"""The Kubernetes API rights each of the chart's ServiceAccounts may hold: the whole of Berg's RBAC.

Keyed by the ServiceAccount's name without the release's prefix (``berg-controller`` is ``controller``). Every
list is empty: no Berg pod calls the Kubernetes API. Serving follows the model registry's alias (nothing patches
the InferenceService), the controller starts runs through the Kubeflow Pipelines HTTP API, and the upload Job
does the same. test_chart.py checks the rendered chart against it; a check against a real API server (``kubectl
auth can-i --list --as system:serviceaccount:<ns>:<name>``) can import it too.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["RBAC_ALLOWLIST", "Rule"]


class Rule(TypedDict):
    """One PolicyRule of a Role, as the chart would render it."""

    apiGroups: list[str]
    resources: list[str]
    verbs: list[str]


RBAC_ALLOWLIST: dict[str, list[Rule]] = {
    "controller": [],
    "features": [],
    "ingestion": [],
    "monitoring": [],
    "pipeline-upload": [],
    "serving": [],
    "test": [],
    "validation": [],
}
