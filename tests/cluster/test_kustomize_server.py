"""``k8s/`` overlays applied server-side: the API server validates every object against its built-in types and
the operators' CRDs, with field validation strict (an unknown field is an error, not a warning)."""

from __future__ import annotations

import pytest
import yaml

from tests.cluster.controlplane import REPO, ControlPlane

pytestmark = [pytest.mark.cluster]

OVERLAYS = sorted(path.parent.name for path in (REPO / "k8s" / "overlays").glob("*/kustomization.yaml"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_applies_server_side(cluster: ControlPlane, overlay: str) -> None:
    rendered = cluster.kubectl("kustomize", str(REPO / "k8s" / "overlays" / overlay)).stdout
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
    # A dry run cannot create objects inside a namespace it only pretends to create: the namespaces are real.
    cluster.apply([doc for doc in documents if doc["kind"] == "Namespace"])
    result = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "--validate=strict", "-f", "-", stdin=rendered, check=False
    )
    assert result.returncode == 0, result.stderr
    applied = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(applied) == len(documents), result.stdout
