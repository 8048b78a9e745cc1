"""The cluster tier's session: one real control plane with a kwok node and the operators' CRDs, shared by its tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.controlplane import ControlPlane, running_control_plane
from tests.cluster.crds import install_operator_crds
from tests.cluster.kserve import running_kserve_controller
from tests.delivery.tools import require_tool


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The control plane, started once per session with every operator CRD Established and KServe's controller
    running, stopped at its end."""
    with running_control_plane(tmp_path_factory.mktemp("cluster")) as plane:
        install_operator_crds(plane)
        with running_kserve_controller(plane):
            yield plane


@pytest.fixture(scope="session")
def helm() -> str:
    """The helm binary (scripts/bootstrap.sh builds it)."""
    return require_tool("helm")
