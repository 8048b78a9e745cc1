"""Health probes: is each component of the stack actually serving, not just running?"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from berg_app.stack.settings import StackSettings

__all__ = ["INFRASTRUCTURE", "Probe", "ProbeResult", "http_live", "http_ready", "port_open", "stack_probes"]

INFRASTRUCTURE = ("kafka", "prometheus", "alertmanager")
"""The components that are not Berg services."""


@dataclass(frozen=True)
class ProbeResult:
    """Whether a component serves, and a one-line detail."""

    healthy: bool
    detail: str


Probe = Callable[[], ProbeResult]


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_ready(url: str) -> ProbeResult:
    """Healthy when ``url`` answers 200."""
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as error:
        return ProbeResult(False, f"{url}: {type(error).__name__}")
    return ProbeResult(response.status_code == 200, f"{url} -> {response.status_code}")


def http_live(base_url: str) -> ProbeResult:
    """Healthy when ``/healthz`` answers 200; the detail says whether ``/readyz`` does too."""
    live = http_ready(f"{base_url}/healthz")
    if not live.healthy:
        return live
    ready = http_ready(f"{base_url}/readyz")
    return ProbeResult(True, "ready" if ready.healthy else f"live, not ready yet ({ready.detail})")


def _kafka(settings: StackSettings) -> ProbeResult:
    if not port_open(settings.host, settings.ports.kafka):
        return ProbeResult(False, f"nothing listens on {settings.kafka_bootstrap}")
    admin: Any = None
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id="berg-probe",
            request_timeout_ms=3_000,
        )
        brokers = admin.describe_cluster()["brokers"]
        topics = admin.list_topics()
    except (KafkaError, OSError, ValueError) as error:
        return ProbeResult(False, f"{settings.kafka_bootstrap}: {type(error).__name__}: {error}")
    finally:
        if admin is not None:
            admin.close()
    return ProbeResult(bool(brokers), f"{settings.kafka_bootstrap}: {len(brokers)} broker(s), {len(topics)} topic(s)")


def stack_probes(settings: StackSettings) -> dict[str, Probe]:
    """One probe per supervised program, keyed by program name."""
    host, ports = settings.host, settings.ports
    return {
        "kafka": lambda: _kafka(settings),
        "prometheus": lambda: http_ready(f"http://{host}:{ports.prometheus}/-/ready"),
        "alertmanager": lambda: http_ready(f"http://{host}:{ports.alertmanager}/-/ready"),
    }
