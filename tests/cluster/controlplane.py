"""A real Kubernetes control plane on loopback, for the cluster tier: etcd, kube-apiserver (RBAC, PodSecurity
admission on), kube-controller-manager, kube-scheduler and one kwok node (pods become Ready without containers).

The binaries come from ``scripts/cluster-tools.sh`` (built from the Go module proxy, cached outside the clone,
linked into ``.berg/tools/cluster``). Every process runs in its own process group, dies with the test process,
and is stopped when the context exits.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cluster.certs import CertificateAuthority, KeyPair
from tests.helpers import free_port, wait_for
from tests.servers import ServerProcess

__all__ = ["HOST", "KWOK_NODE", "ControlPlane", "cluster_tool", "running_control_plane", "wait_answering"]

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".berg" / "tools" / "cluster"
HOST = "127.0.0.1"
KWOK_NODE = "kwok-node-0"
NODE_LABELS = {
    "kubernetes.io/hostname": KWOK_NODE,
    "kubernetes.io/os": "linux",
    "kubernetes.io/arch": "amd64",
    "type": "kwok",
    # The production scenario pins Berg to a dedicated pool (helm/berg/ci/production-values.yaml).
    "node.example.com/pool": "berg",
}
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
_STARTUP_S = 300.0
"""How long a component may take to answer: generous, for a busy machine (the wait ends as soon as it answers)."""
_STOP_S = 30.0
_KWOK_STAGES = ("node/fast", "node/heartbeat-with-lease", "pod/fast")


def cluster_tool(name: str) -> Path:
    """A binary or data folder of the cluster tier; fails the test with the fix when it was not built."""
    path = TOOLS / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: run scripts/cluster-tools.sh (make test runs it; it builds the control plane once)",
            pytrace=False,
        )
    return path


def _kubeconfig(path: Path, server: str, ca: Path, client: KeyPair, user: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "berg-test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}],
        "contexts": [{"name": "berg-test", "context": {"cluster": "berg-test", "user": user}}],
        "current-context": "berg-test",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _component_flags(kubeconfig: Path, port: int, cert_dir: Path) -> list[str]:
    """What the controller manager and the scheduler share: their identity, a loopback health port with a
    self-signed certificate, and no leader election (one instance)."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={HOST}",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        "--leader-elect=false",
    ]


def _kwok_config(path: Path) -> Path:
    """kwok's stock stages (node initialise and heartbeat with a lease, pod ready/complete/delete) in one file."""
    stage_root = cluster_tool("stage")
    documents: list[str] = []
    for stage in _KWOK_STAGES:
        for file in sorted((stage_root / stage).glob("*.yaml")):
            if file.name != "kustomization.yaml":
                documents.append(file.read_text())
    path.write_text("\n---\n".join(documents))
    return path


@dataclass
class ControlPlane:
    """The running control plane: its admin kubeconfig, its CA, and ``kubectl``/``helm`` bound to it."""

    workdir: Path
    server: str
    kubeconfig: Path
    authority: CertificateAuthority
    admin: KeyPair
    processes: dict[str, ServerProcess] = field(default_factory=dict)

    def check_alive(self) -> None:
        """Fail at once, with its log, when a component died."""
        for name, process in self.processes.items():
            process.check_alive(name)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout_s: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run the cluster tier's kubectl against this control plane as its administrator."""
        result = subprocess.run(
            [str(cluster_tool("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and result.returncode != 0:
            self.check_alive()
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def get(self, *args: str) -> Any:
        """``kubectl get ... -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: str | Sequence[dict[str, Any]], *extra: str) -> None:
        """Server-side apply of YAML text or objects."""
        text = manifest if isinstance(manifest, str) else yaml.safe_dump_all(list(manifest))
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", *extra, stdin=text)

    def helm(
        self, helm: str, *args: str, check: bool = True, timeout_s: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """Run helm against this control plane."""
        result = subprocess.run(
            [helm, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            cwd=REPO,
        )
        if check and result.returncode != 0:
            self.check_alive()
            raise AssertionError(
                f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def client(self) -> httpx.Client:
        """An HTTPS client of the API server, as its administrator."""
        return httpx.Client(base_url=self.server, verify=_client_tls(self.authority.cert, self.admin), timeout=30)


def _client_tls(ca: Path, client: KeyPair) -> ssl.SSLContext:
    """TLS that trusts ``ca`` and presents ``client``'s certificate."""
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(client.cert), str(client.key))
    return context


def _answers(url: str, **client_options: Any) -> bool:
    try:
        return httpx.get(url, timeout=5, **client_options).status_code == 200
    except httpx.HTTPError:
        return False


def wait_answering(process: ServerProcess, name: str, url: str, **client_options: Any) -> None:
    """Poll ``url`` until it answers 200; fail at once, with the log, if the process exits first."""

    def answering() -> bool:
        process.check_alive(name)
        return _answers(url, **client_options)

    wait_for(answering, _STARTUP_S, f"{name} to answer {url}")


@contextmanager
def running_control_plane(workdir: Path | None = None) -> Iterator[ControlPlane]:
    """Start etcd, the API server, the controller manager, the scheduler and kwok with one node; stop all on exit."""
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="berg-cluster-")))
        logs = workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        authority = CertificateAuthority(workdir / "pki")
        apiserver_port = free_port()
        server = f"https://{HOST}:{apiserver_port}"
        serving = authority.issue(
            "apiserver",
            "kube-apiserver",
            server_names=(
                HOST,
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        )
        admin = authority.issue("admin", "berg-test-admin", organization="system:masters", client=True)
        manager_identity = authority.issue("controller-manager", "system:kube-controller-manager", client=True)
        scheduler_identity = authority.issue("scheduler", "system:kube-scheduler", client=True)
        tokens = authority.signing_key("service-accounts")
        kubeconfig = _kubeconfig(workdir / "admin.kubeconfig", server, authority.cert, admin, "admin")
        plane = ControlPlane(workdir, server, kubeconfig, authority, admin)

        def start(name: str, argv: list[str]) -> ServerProcess:
            process = ServerProcess(argv, logs / f"{name}.log", death_signal="KILL", run_as=None)
            plane.processes[name] = process
            stack.callback(process.stop, signal.SIGTERM, _STOP_S)
            return process

        etcd_client, etcd_peer = free_port(), free_port()
        etcd = start(
            "etcd",
            [
                str(cluster_tool("etcd")),
                "--name=berg-test",
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls=http://{HOST}:{etcd_client}",
                f"--advertise-client-urls=http://{HOST}:{etcd_client}",
                f"--listen-peer-urls=http://{HOST}:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://{HOST}:{etcd_peer}",
                f"--initial-cluster=berg-test=http://{HOST}:{etcd_peer}",
                # A throwaway cluster: losing it in a power cut loses nothing, and fsync is the slow part.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        wait_answering(etcd, "etcd", f"http://{HOST}:{etcd_client}/health")

        apiserver = start(
            "kube-apiserver",
            [
                str(cluster_tool("kube-apiserver")),
                f"--etcd-servers=http://{HOST}:{etcd_client}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={apiserver_port}",
                f"--cert-dir={workdir / 'apiserver'}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={authority.cert}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={tokens.cert}",
                f"--service-account-signing-key-file={tokens.key}",
                "--service-cluster-ip-range=10.96.0.0/16",
                # As a production cluster: RBAC, and the Node authorizer for kubelets.
                "--authorization-mode=Node,RBAC",
                # The default master-endpoint reconciler refuses a loopback advertise address.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )
        wait_answering(apiserver, "kube-apiserver", f"{server}/readyz", verify=_client_tls(authority.cert, admin))

        manager_port = free_port()
        manager_config = _kubeconfig(
            workdir / "controller-manager.kubeconfig", server, authority.cert, manager_identity, "controller-manager"
        )
        manager = start(
            "kube-controller-manager",
            [
                str(cluster_tool("kube-controller-manager")),
                *_component_flags(manager_config, manager_port, workdir / "controller-manager"),
                # Each controller acts as its own ServiceAccount, as kubeadm runs it.
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={tokens.key}",
                f"--root-ca-file={authority.cert}",
                f"--cluster-signing-cert-file={authority.cert}",
                f"--cluster-signing-key-file={authority.key}",
            ],
        )
        scheduler_port = free_port()
        scheduler_config = _kubeconfig(
            workdir / "scheduler.kubeconfig", server, authority.cert, scheduler_identity, "scheduler"
        )
        scheduler = start(
            "kube-scheduler",
            [
                str(cluster_tool("kube-scheduler")),
                *_component_flags(scheduler_config, scheduler_port, workdir / "scheduler"),
            ],
        )
        for name, process, port in (
            ("kube-controller-manager", manager, manager_port),
            ("kube-scheduler", scheduler, scheduler_port),
        ):
            # Their serving certificates are self-signed (--cert-dir); only liveness is read here.
            wait_answering(process, name, f"https://{HOST}:{port}/healthz", verify=False)

        start(
            "kwok",
            [
                str(cluster_tool("kwok")),
                f"--kubeconfig={kubeconfig}",
                f"--config={_kwok_config(workdir / 'kwok.yaml')}",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                # Its heartbeat renews the node's lease; the default is shorter than a busy machine allows.
                "--node-lease-duration-seconds=40",
                f"--server-address={HOST}:{free_port()}",
                "--cidr=10.244.0.0/24",
                f"--node-ip={HOST}",
            ],
        )
        plane.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": KWOK_NODE,
                        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                        "labels": NODE_LABELS,
                    },
                    "status": {
                        "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250", "ephemeral-storage": "1Ti"},
                        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250", "ephemeral-storage": "1Ti"},
                    },
                }
            ]
        )
        plane.kubectl("wait", "--for=condition=Ready", f"node/{KWOK_NODE}", f"--timeout={int(_STARTUP_S)}s")
        # The ServiceAccount admission plugin refuses pods until the namespace's `default` account exists.
        wait_for(
            lambda: plane.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0,
            _STARTUP_S,
            "the controller manager to create the default ServiceAccount",
        )
        yield plane
