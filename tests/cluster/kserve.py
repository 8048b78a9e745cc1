"""KServe's real controller manager (built by ``scripts/cluster-tools.sh`` at the release the chart targets), run as
a local process against the tier's API server, with its admission webhooks registered to it on loopback.

Its defaulting webhook is what turns an InferenceService's predictor into ``model.modelFormat`` form, and its
reconciler creates the Deployments, Services and autoscalers; both are the release's own code, unchanged
except that its webhook server listens on 127.0.0.1 (``scripts/cluster-tools.sh`` says why).
"""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.controlplane import HOST, ControlPlane, cluster_tool, wait_answering
from tests.helpers import free_port
from tests.servers import ServerProcess

__all__ = ["KSERVE_NAMESPACE", "running_kserve_controller"]

KSERVE_NAMESPACE = "kserve"
_STOP_S = 30.0


def _config(name: str) -> Path:
    return cluster_tool("kserve-config") / name


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def inference_service_config() -> dict[str, Any]:
    """The release's ``inferenceservice-config`` with Standard (plain Deployments) as the default mode, as the
    chart's documentation asks of a cluster without Knative."""
    (config,) = _documents(_config("configmap") / "inferenceservice.yaml")
    config["metadata"]["namespace"] = KSERVE_NAMESPACE
    deploy = json.loads(config["data"]["deploy"])
    deploy["defaultDeploymentMode"] = "Standard"
    config["data"]["deploy"] = json.dumps(deploy)
    return config


def webhook_configurations(port: int, ca_bundle: bytes) -> list[dict[str, Any]]:
    """The release's webhook configurations, each pointed at ``https://127.0.0.1:<port><path>`` instead of
    its in-cluster Service."""
    configurations: list[dict[str, Any]] = []
    for document in _documents(_config("webhook") / "manifests.yaml"):
        if document["kind"] not in {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}:
            continue
        for hook in document["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {
                "url": f"https://{HOST}:{port}{path}",
                "caBundle": base64.b64encode(ca_bundle).decode(),
            }
        configurations.append(document)
    return configurations


@contextmanager
def running_kserve_controller(plane: ControlPlane) -> Iterator[ServerProcess]:
    """Start KServe's controller manager with its configuration, storage containers and webhooks; stop it on exit."""
    workdir = plane.workdir / "kserve"
    certs = workdir / "tmp" / "k8s-webhook-server" / "serving-certs"
    certs.mkdir(parents=True, exist_ok=True)
    # controller-runtime reads the webhook's serving certificate from $TMPDIR/k8s-webhook-server/serving-certs.
    serving = plane.authority.issue("kserve-webhook", "kserve-webhook", server_names=(HOST,))
    (certs / "tls.crt").write_bytes(serving.cert.read_bytes())
    (certs / "tls.key").write_bytes(serving.key.read_bytes())

    plane.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KSERVE_NAMESPACE}},
            inference_service_config(),
            # Knative-mode InferenceServices read Knative's autoscaler defaults (the release's own).
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "knative-serving"}},
            *_documents(cluster_tool("knative-serving-config") / "autoscaler.yaml"),
        ]
    )
    # The reconciler dereferences the default ClusterStorageContainer; without it, it panics on every event.
    plane.apply(
        [
            doc
            for path in sorted(_config("storagecontainers").glob("*.yaml"))
            for doc in _documents(path)
            # Beside the objects lie kustomize's own files (kustomization, a name-reference configuration).
            if "apiVersion" in doc and "kind" in doc and not doc["apiVersion"].startswith("kustomize.")
        ]
    )

    webhook_port, probe_port = free_port(), free_port()
    with ExitStack() as stack:
        log = plane.workdir / "logs" / "kserve-controller.log"
        process = ServerProcess(
            [
                str(cluster_tool("kserve-manager")),
                f"--kubeconfig={plane.kubeconfig}",
                f"--metrics-addr={HOST}:{free_port()}",
                f"--health-probe-addr={HOST}:{probe_port}",
                f"--webhook-port={webhook_port}",
                "--leader-elect=false",
            ],
            log,
            death_signal="KILL",
            run_as=None,
            environment={
                **os.environ,
                "TMPDIR": str(workdir / "tmp"),
                "POD_NAMESPACE": KSERVE_NAMESPACE,
                "KUBECONFIG": str(plane.kubeconfig),
            },
        )
        plane.processes["kserve-controller"] = process
        stack.callback(process.stop, signal.SIGTERM, _STOP_S)
        stack.callback(plane.processes.pop, "kserve-controller", None)
        wait_answering(process, "the KServe controller", f"http://{HOST}:{probe_port}/readyz")
        plane.apply(webhook_configurations(webhook_port, plane.authority.cert.read_bytes()))
        yield process
