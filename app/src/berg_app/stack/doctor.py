"""``berg doctor``: what this machine lacks to run the stack, and how to get it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from berg_app.stack import kafka
from berg_app.stack.layout import StateLayout
from berg_app.stack.probes import port_open
from berg_app.stack.settings import StackSettings
from berg_app.stack.supervisor import Supervisor

__all__ = ["Finding", "diagnose", "java_major_version"]

_MIN_FREE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Finding:
    """One check: passed or not, what was found, and the fix when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def java_major_version(version_output: str) -> int | None:
    """The major version in ``java -version`` output (``1.8.0`` is 8, ``17.0.15`` is 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _binary(name: str, fix: str, *, required: bool = True, version_flag: str = "--version") -> Finding:
    path = shutil.which(name)
    if path is None:
        return Finding(name, False, "not on PATH", fix, required)
    try:
        result = subprocess.run([path, version_flag], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Finding(name, True, f"{path} (`{version_flag}` failed: {error})", required=required)
    version = re.search(r"\d+\.\d+(?:\.\d+)?", result.stdout + result.stderr)
    return Finding(name, True, f"{path} {version.group(0) if version else ''}".strip(), required=required)


def _java() -> Finding:
    fix = "apt-get install openjdk-17-jre-headless (Kafka 4 needs Java 17 or newer)"
    path = shutil.which("java")
    if path is None:
        return Finding("java", False, "not on PATH", fix)
    result = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=20, check=False)
    major = java_major_version(result.stderr + result.stdout)
    if major is None or major < 17:
        return Finding("java", False, f"{path}: Java {major or 'unknown'}", fix)
    return Finding("java", True, f"{path}: Java {major}")


def _kafka_jars(settings: StackSettings, layout: StateLayout) -> Finding:
    libs = kafka.kafka_libs(settings, layout)
    if settings.kafka_home is not None:
        ok = kafka.jars_present(libs)
        return Finding("kafka", ok, f"KAFKA_HOME={settings.kafka_home}", "" if ok else "unset KAFKA_HOME or fix it")
    if kafka.jars_present(libs):
        return Finding("kafka", True, f"Kafka {settings.kafka_version} jars cached in {libs}")
    mvn = shutil.which("mvn")
    if mvn is None:
        return Finding(
            "kafka",
            False,
            "no cached jars and no Maven to fetch them",
            "apt-get install maven, or set KAFKA_HOME to a Kafka distribution",
        )
    return Finding("kafka", True, f"Kafka {settings.kafka_version} will be fetched by {mvn} on first `berg up`")


def _ports(settings: StackSettings, stack_running: bool) -> list[Finding]:
    findings = []
    for name, port in settings.ports.as_dict().items():
        busy = port_open(settings.host, port)
        if busy and stack_running:
            findings.append(Finding(f"port {name}", True, f"{settings.host}:{port} held by this Berg stack"))
        elif busy:
            findings.append(
                Finding(
                    f"port {name}",
                    False,
                    f"{settings.host}:{port} is in use",
                    f"stop what listens there, or set BERG_PORTS__{name.upper()} to a free port",
                )
            )
        else:
            findings.append(Finding(f"port {name}", True, f"{settings.host}:{port} is free"))
    return findings


def _state_dir(layout: StateLayout) -> Finding:
    probe = layout.root if layout.root.exists() else next(p for p in layout.root.parents if p.exists())
    free = shutil.disk_usage(probe).free
    writable = _writable(probe)
    ok = writable and free >= _MIN_FREE_BYTES
    detail = f"{layout.root} ({free / 1024**3:.1f} GiB free{'' if writable else ', not writable'})"
    return Finding("state dir", ok, detail, "" if ok else "set BERG_STATE_DIR to a writable folder with 2 GiB free")


def _writable(folder: Path) -> bool:
    try:
        with open(folder / ".berg-doctor-probe", "w"):
            pass
        (folder / ".berg-doctor-probe").unlink()
    except OSError:
        return False
    return True


def diagnose(settings: StackSettings) -> list[Finding]:
    """Every check, in the order a user should fix them."""
    layout = StateLayout.at(settings.state_dir)
    python_ok = sys.version_info[:2] == (3, 11)
    return [
        Finding(
            "python",
            python_ok,
            sys.version.split()[0],
            "Berg needs Python 3.11 (uv installs it: uv python install 3.11)",
        ),
        _binary("uv", "pip install uv", required=False),
        _java(),
        _binary("mvn", "apt-get install maven", required=settings.kafka_home is None, version_flag="--version"),
        _kafka_jars(settings, layout),
        _binary(settings.prometheus_bin, "apt-get install prometheus"),
        _binary(settings.alertmanager_bin, "apt-get install prometheus-alertmanager"),
        _binary("promtool", "apt-get install prometheus (tests check alert rules with it)", required=False),
        _binary("amtool", "apt-get install prometheus-alertmanager (tests check routing with it)", required=False),
        _state_dir(layout),
        *_ports(settings, Supervisor(layout).is_running()),
    ]
