"""Berg's images, run the way the chart runs them (marker ``images``: ``make images`` builds them first).

Each service image runs as the chart's pod would, with podman: UID/GID 10001 from the image, a read-only root
filesystem with tmpfs at /tmp and /var/lib/berg (the chart's emptyDirs), the chart's kind of settings, and no
network but the container's own loopback, so every server a service needs (Kafka, the KFP API, the predictor)
is an address where nothing listens. Then: ``/healthz`` answers 200 (the chart's liveness and startup probe),
PID 1 is ``python -m berg_<service>`` under UID 10001 and cannot write the root filesystem, and SIGTERM ends it
with exit 0 within the chart's grace period (terminationGracePeriodSeconds: 30). The training image runs its
default command the same way.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.images.conftest import Podman, require_image

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.images, pytest.mark.slow]

GRACE_PERIOD_S = 30
"""The chart's terminationGracePeriodSeconds: after it, the kubelet kills the container."""
STARTUP_BUDGET_S = 300
"""The chart's startup probe (failureThreshold 60 x periodSeconds 5): how long /healthz may take to answer."""
HTTP_PORT = 8080
NOTHING = "127.0.0.1:9"
"""An address where nothing listens (the container has only its loopback)."""


@dataclass(frozen=True)
class Service:
    """One service image and the settings it starts with here."""

    image: str
    module: str
    env: dict[str, str]
    args: tuple[str, ...] = ()
    refuses_to_start: str | None = None
    """What it says when it exits at start-up by design in this setting (a dependency it checks first is
    missing): the test then checks it exits 1 with that message instead of serving."""
    tmpfs: tuple[str, ...] = field(default=("/tmp", "/var/lib/berg"))
    mounts: tuple[tuple[str, str], ...] = ()
    """(file in this checkout, path in the container), read-only: what the chart mounts from a ConfigMap."""


def _settings(prefix: str, **specific: str) -> dict[str, str]:
    """The chart's settings for a service (its ConfigMap), every server pointing at nothing."""
    env = {
        "BERG_USE_CASE": "fraud",
        f"BERG_{prefix}_ENVIRONMENT": "production",
        f"BERG_{prefix}_KAFKA__BOOTSTRAP_SERVERS": NOTHING,
        f"BERG_{prefix}_LOGGING__JSON_FORMAT": "true",
        f"BERG_{prefix}_WEB__HOST": "0.0.0.0",
        f"BERG_{prefix}_WEB__PORT": str(HTTP_PORT),
    }
    for name, value in specific.items():
        env[name if name.startswith("BERG_") else f"BERG_{prefix}_{name}"] = value
    return env


SERVICES = {
    "ingestion": Service(
        "berg-ingestion",
        "berg_ingestion",
        _settings("INGESTION", LANDING_DIR="/var/lib/berg/landing"),
    ),
    "validation": Service(
        "berg-validation",
        "berg_validation",
        _settings("VALIDATION", DATA_DOCS_DIR="/var/lib/berg/gx"),
    ),
    "features": Service(
        "berg-features",
        "berg_features",
        _settings("FEATURES", OFFLINE_ROOT="/var/lib/berg/feast/offline", BERG_STATE_DIR="/var/lib/berg"),
    ),
    "serving-predictor": Service(
        "berg-serving",
        "berg_serving",
        _settings("SERVING", REGISTRY_URI="/var/lib/berg/registry", MODEL_NAME="fraud", GRPC__HOST="0.0.0.0"),
        args=("--shape", "predictor"),
    ),
    "serving-transformer": Service(
        "berg-serving",
        "berg_serving",
        _settings(
            "SERVING",
            REGISTRY_URI="/var/lib/berg/registry",
            MODEL_NAME="fraud",
            GRPC__HOST="0.0.0.0",
            PREDICTOR__HOST=NOTHING,
            PREDICTOR__PROTOCOL="grpc-v2",
            BERG_STATE_DIR="/var/lib/berg",
        ),
        args=("--shape", "transformer"),
        # An empty feature registry (the embedded profile on a fresh tmpfs): the transformer checks the use case's
        # views at start-up and stops, as it would on a cluster before the features service applied them.
        refuses_to_start="the feature registry has no view",
    ),
    "monitoring": Service(
        "berg-monitoring",
        "berg_monitoring",
        _settings("MONITORING", REGISTRY_URI="/var/lib/berg/registry"),
    ),
    "controller": Service(
        "berg-controller",
        "berg_controller",
        _settings(
            "CONTROLLER",
            STATE_DIR="/var/lib/berg/controller",
            REGISTRY_URI="/var/lib/berg/registry",
            LAUNCHER="kfp",
            KFP__HOST=f"http://{NOTHING}",
            KFP__OFFLINE_ROOT="/var/lib/berg/feast/offline",
            KFP__REGISTRY_URI="/var/lib/berg/registry",
            KFP__PIPELINE_PACKAGE="/etc/berg/pipeline/training.yaml",
            WEBHOOK_TOKEN="images-test-token-0123456789abcdef",
            MODELS='["fraud"]',
        ),
        mounts=(("pipelines/compiled/training.yaml", "/etc/berg/pipeline/training.yaml"),),
    ),
}

# What a probe inside the container reports: the two health endpoints, PID 1's command line and identity,
# and whether the root filesystem refuses a write. Run with the image's own python (no curl in the images).
_PROBE = """
import json, urllib.error, urllib.request
def status(path):
    try:
        return urllib.request.urlopen("http://127.0.0.1:%d" + path, timeout=3).status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        return repr(error)
def ids(name):
    line = next(line for line in open("/proc/1/status") if line.startswith(name + ":"))
    return [int(value) for value in line.split()[1:]]
try:
    open("/opt/berg/written-at-run-time", "w").close()
    read_only = False
except OSError:
    read_only = True
print(json.dumps({
    "healthz": status("/healthz"),
    "readyz": status("/readyz"),
    "cmdline": [word for word in open("/proc/1/cmdline").read().split(chr(0)) if word],
    "uid": ids("Uid"),
    "gid": ids("Gid"),
    "read_only": read_only,
}))
""".strip()


def _run_args(
    name: str, service_env: dict[str, str], tmpfs: tuple[str, ...], mounts: tuple[tuple[str, str], ...] = ()
) -> list[str]:
    args = ["run", "--detach", "--name", name, "--pull=never", "--network=none", "--read-only"]
    for path in tmpfs:
        args += ["--tmpfs", f"{path}:rw,size=512m,mode=1777"]
    for source, target in mounts:
        args += ["--volume", f"{REPO / source}:{target}:ro"]
    for key, value in sorted(service_env.items()):
        args += ["--env", f"{key}={value}"]
    return args


def _state(podman: Podman, name: str) -> dict[str, object]:
    (inspected,) = json.loads(podman.check("inspect", name, "--format", "json"))
    state: dict[str, object] = inspected["State"]
    return state


def _probe_until_healthy(podman: Podman, name: str) -> dict[str, object]:
    """The probe's report once /healthz answers 200; fails with the logs if the container exits or never answers."""
    deadline = time.monotonic() + STARTUP_BUDGET_S
    report: dict[str, object] = {}
    while time.monotonic() < deadline:
        state = _state(podman, name)
        if state["Status"] != "running":
            logs = podman("logs", name).stderr[-4000:]
            pytest.fail(f"{name} exited (exit {state['ExitCode']}) before /healthz answered:\n{logs}")
        probe = podman("exec", name, "python", "-c", _PROBE % HTTP_PORT)
        if probe.returncode == 0:
            report = json.loads(probe.stdout)
            if report["healthz"] == 200:
                return report
        time.sleep(1)
    logs = podman("logs", name).stderr[-4000:]
    pytest.fail(f"{name}: no 200 from /healthz within the startup probe's {STARTUP_BUDGET_S} s: {report}\n{logs}")


@pytest.mark.parametrize("case", sorted(SERVICES))
def test_service_image_runs_as_the_chart_runs_it(podman: Podman, container_name: str, case: str) -> None:
    service = SERVICES[case]
    image = f"localhost/{service.image}:dev"
    require_image(podman, image)
    podman.check(*_run_args(container_name, service.env, service.tmpfs, service.mounts), image, *service.args)
    if service.refuses_to_start is not None:
        exit_code = podman.check("wait", "--condition", "exited", container_name, timeout=STARTUP_BUDGET_S)
        logs = podman("logs", container_name).stderr
        assert exit_code.strip() == "1", f"{case}: exit {exit_code.strip()} at start-up, expected 1:\n{logs[-3000:]}"
        assert service.refuses_to_start in logs, f"{case}: exited without saying why:\n{logs[-3000:]}"
        return

    report = _probe_until_healthy(podman, container_name)
    assert report["cmdline"] == ["python", "-m", service.module, *service.args], report
    assert report["uid"] == [10001] * 4, f"PID 1 does not run as UID 10001: {report}"
    assert report["gid"] == [10001] * 4, f"PID 1 does not run as GID 10001: {report}"
    assert report["read_only"], "the root filesystem took a write under --read-only"

    podman.check("kill", "--signal", "TERM", container_name)
    try:
        podman.check("wait", "--condition", "exited", container_name, timeout=GRACE_PERIOD_S)
    except subprocess.TimeoutExpired:
        logs = podman("logs", container_name).stderr[-3000:]
        pytest.fail(f"{case}: still running {GRACE_PERIOD_S} s after SIGTERM (the kubelet would kill it):\n{logs}")
    state = _state(podman, container_name)
    logs = podman("logs", container_name).stderr[-3000:]
    assert state["ExitCode"] == 0, f"{case}: exit {state['ExitCode']} after SIGTERM:\n{logs}"


def test_training_image_runs_its_command(podman: Podman, container_name: str) -> None:
    """The training image's default command imports the pipeline, KFP and XGBoost, as UID 10001, read-only."""
    image = "localhost/berg-training:dev"
    require_image(podman, image)
    podman.check(*_run_args(container_name, {}, ("/tmp",)), image)
    out = podman.check("wait", "--condition", "exited", container_name, timeout=STARTUP_BUDGET_S)
    logs = podman("logs", container_name)
    assert out.strip() == "0", f"the training image's command failed (exit {out.strip()}):\n{logs.stderr[-3000:]}"
    assert logs.stdout.strip() == "berg training image"
    identity = podman.check(
        *("run", "--rm", "--name", f"{container_name}-id", "--pull=never", "--network=none", "--read-only", image),
        *("python3", "-c", "import os; print(os.getuid(), os.getgid())"),
    )
    assert identity.split() == ["10001", "10001"]
