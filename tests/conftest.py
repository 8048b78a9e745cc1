"""Shared fixtures. Real servers (Kafka, Prometheus, Alertmanager) start once per test session.

The session stack is the same :class:`~berg.stack.local.LocalStack` that
``berg up`` runs, in a temporary state directory on free ports, so tests never
collide with a stack a developer already has running.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from berg.settings import KafkaSettings
from berg.stack.local import LocalStack
from berg.stack.settings import PortTable, StackSettings


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_table() -> PortTable:
    """Distinct free ports for every component."""
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    kafka, controller, prometheus, alertmanager = sorted(ports)
    return PortTable(kafka=kafka, kafka_controller=controller, prometheus=prometheus, alertmanager=alertmanager)


def short_state_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A state directory whose socket path fits in a Unix socket address."""
    return tmp_path_factory.mktemp(name, numbered=True)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Kafka, Prometheus and Alertmanager, started once for the whole session and stopped at its end."""
    settings = StackSettings(
        state_dir=short_state_dir(tmp_path_factory, "stack"),
        ports=free_port_table(),
        scrape_interval_s=1,
        topic_partitions=3,
    )
    local = LocalStack(settings)
    local.start(local.prepare())
    try:
        local.wait_healthy()
        local.create_topics()
        yield local
    finally:
        leftovers = local.down()
        assert leftovers == [], f"processes had to be killed at teardown: {leftovers}"


@pytest.fixture
def kafka_settings(stack: LocalStack) -> KafkaSettings:
    """Client settings for the session broker."""
    return KafkaSettings(bootstrap_servers=stack.settings.kafka_bootstrap, client_id="berg-test")


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Unique names (consumer groups, services), so tests never share state on the session broker."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:10]}"
