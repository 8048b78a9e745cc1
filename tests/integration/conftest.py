"""Fixtures for tests against the session's real servers: Kafka, and throwaway Redis, PostgreSQL and SASL Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from berg.kafka.producer import open_producer
from berg.settings import KafkaSettings
from tests.servers import (
    PostgresServer,
    RedisServer,
    SaslKafka,
    running_postgres,
    running_redis,
    running_sasl_kafka,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def admin(kafka_settings: KafkaSettings) -> Iterator[Any]:
    client = KafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers, client_id="berg-test-admin")
    yield client
    client.close()


@pytest.fixture
def new_topic(admin: Any) -> Callable[[int], str]:
    """Create a fresh topic with N partitions, so tests never read each other's records."""

    def create(partitions: int) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        admin.create_topics([NewTopic(name, partitions, 1)])
        return name

    return create


@pytest.fixture
def producer(kafka_settings: KafkaSettings) -> Iterator[Any]:
    client = open_producer(kafka_settings)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for the session; take a database of your own with ``allocate_db()``."""
    with running_redis() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for the session; take a database of your own with ``create_database()``."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def sasl_kafka() -> Iterator[SaslKafka]:
    """A second Kafka for the session, SASL/SCRAM with ACLs enforced; create users and ACLs through its ``admin()``."""
    with running_sasl_kafka() as server:
        yield server
