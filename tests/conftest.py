"""Shared fixtures. Real servers (Kafka, Prometheus, Alertmanager) start once per test session.

The session stack is the same :class:`~berg_app.stack.local.LocalStack` that
``berg up`` runs, in a temporary state directory on free ports, so tests never
collide with a stack a developer already has running.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from berg.settings import KafkaSettings
from berg_app.stack.local import LocalStack
from tests.helpers import running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The shared stack, started once for the whole session and stopped at its end."""
    with running_stack(tmp_path_factory.mktemp("stack")) as local:
        yield local


@pytest.fixture
def kafka_settings(stack: LocalStack) -> KafkaSettings:
    """Client settings for the session broker."""
    return KafkaSettings(bootstrap_servers=stack.settings.kafka_bootstrap, client_id="berg-test")


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Unique names (consumer groups, services), so tests never share state on the session broker."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:10]}"
