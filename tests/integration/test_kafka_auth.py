"""Berg's clients against a Kafka that authenticates (SASL/SCRAM-SHA-512) and authorizes (ACLs): issue 19.

The broker is the local stack's Kafka with a SCRAM listener and KRaft's StandardAuthorizer
(``sasl_kafka``). A writer may write one topic; a reader may read it in one consumer group. Berg's
own producer, consumer, admin and the monitoring exporter's reader sign in with the settings a
service reads (``KafkaSettings`` through ``client_security``), and what no ACL grants is refused.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kafka.admin import ACL, ACLOperation, ACLPermissionType, ResourcePattern, ResourceType
from kafka.admin._users import UserScramCredentialUpsertion
from kafka.errors import (
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
)

from berg.kafka.consumer import open_consumer
from berg.kafka.producer import Outgoing, open_producer, send_and_wait
from berg.kafka.topics import TopicSpec, ensure_topics
from berg_monitoring.exporter import open_reader
from tests.helpers import wait_for
from tests.servers import SaslKafka

pytestmark = pytest.mark.integration

SEND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Grants:
    """Two users with their passwords, the topic the writer may write and the reader read, and one neither may."""

    writer: str
    writer_password: str
    reader: str
    reader_password: str
    topic: str
    other_topic: str
    group: str


@pytest.fixture(scope="module")
def grants(sasl_kafka: SaslKafka) -> Iterator[Grants]:
    suffix = uuid.uuid4().hex[:8]
    grants = Grants(
        writer=f"writer-{suffix}",
        writer_password=secrets.token_hex(12),
        reader=f"reader-{suffix}",
        reader_password=secrets.token_hex(12),
        topic=f"granted-{suffix}",
        other_topic=f"ungranted-{suffix}",
        group=f"group-{suffix}",
    )
    # Berg's own admin path (ensure_topics) signs in as the super user.
    admin_settings = sasl_kafka.settings(sasl_kafka.admin_user, sasl_kafka.admin_password)
    assert sorted(ensure_topics(admin_settings, [TopicSpec(t, 1, {}) for t in (grants.topic, grants.other_topic)])) == [
        grants.topic,
        grants.other_topic,
    ]
    admin = sasl_kafka.admin()
    try:
        users = [(grants.writer, grants.writer_password), (grants.reader, grants.reader_password)]
        failed = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, "SCRAM-SHA-512", password) for user, password in users]
        )
        assert failed == {grants.writer: None, grants.reader: None}
        topic, group = (
            ResourcePattern(ResourceType.TOPIC, grants.topic),
            ResourcePattern(ResourceType.GROUP, grants.group),
        )
        allow = ACLPermissionType.ALLOW
        created = admin.create_acls(
            [
                # What the KafkaUsers of k8s/ grant a producer and a consumer: Write; Read, and Read on the group.
                ACL(f"User:{grants.writer}", "*", ACLOperation.WRITE, allow, topic),
                ACL(f"User:{grants.reader}", "*", ACLOperation.READ, allow, topic),
                ACL(f"User:{grants.reader}", "*", ACLOperation.READ, allow, group),
            ]
        )
        assert created["failed"] == []
        yield grants
    finally:
        admin.close()


def _record(topic: str, value: bytes) -> Outgoing:
    return Outgoing(topic=topic, key=b"k", value=value, headers=[])


def _producer(sasl_kafka: SaslKafka, user: str, password: str) -> Any:
    return open_producer(sasl_kafka.settings(user, password))


def test_the_writer_writes_its_topic_and_the_reader_reads_it_in_its_group(
    sasl_kafka: SaslKafka, grants: Grants
) -> None:
    value = uuid.uuid4().bytes
    producer = _producer(sasl_kafka, grants.writer, grants.writer_password)
    try:
        # Idempotent (acks=all) with Write on the topic alone: no IdempotentWrite on the cluster is needed.
        send_and_wait(producer, [_record(grants.topic, value)], SEND_TIMEOUT_S)
    finally:
        producer.close()
    consumer = open_consumer(sasl_kafka.settings(grants.reader, grants.reader_password), [grants.topic], grants.group)
    seen: list[bytes] = []
    try:

        def received() -> bool:
            for records in consumer.poll(timeout_ms=200).values():
                seen.extend(record.value for record in records)
            return value in seen

        wait_for(received, 60, f"{grants.reader} to read the record {grants.writer} wrote")
    finally:
        consumer.close()


def test_a_topic_no_acl_grants_is_refused_at_once(sasl_kafka: SaslKafka, grants: Grants) -> None:
    producer = _producer(sasl_kafka, grants.writer, grants.writer_password)
    try:
        with pytest.raises(TopicAuthorizationFailedError, match=grants.other_topic):
            send_and_wait(producer, [_record(grants.other_topic, b"v")], SEND_TIMEOUT_S)
    finally:
        producer.close()


def test_a_group_no_acl_grants_is_refused(sasl_kafka: SaslKafka, grants: Grants) -> None:
    consumer = open_consumer(
        sasl_kafka.settings(grants.reader, grants.reader_password), [grants.topic], f"{grants.group}-other"
    )
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            consumer.poll(timeout_ms=5_000)
    finally:
        consumer.close()


def test_the_monitoring_reader_needs_no_group(sasl_kafka: SaslKafka, grants: Grants) -> None:
    """The exporter assigns itself partitions (no group), so Read on its topics is all its KafkaUser has."""
    reader = open_reader(sasl_kafka.settings(grants.reader, grants.reader_password), [grants.topic], 3600, 30)
    reader.close()


def test_a_wrong_password_is_refused(sasl_kafka: SaslKafka, grants: Grants) -> None:
    """A process that signs in with a wrong password cannot open a producer; the broker logs why."""
    refusal = "invalid credentials with SASL mechanism SCRAM-SHA-512"
    before = sasl_kafka.log().count(refusal)
    environment = {
        **os.environ,
        "BERG_KAFKA__BOOTSTRAP_SERVERS": sasl_kafka.bootstrap,
        "BERG_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "BERG_KAFKA__SASL_USERNAME": grants.writer,
        "BERG_KAFKA__SASL_PASSWORD": "not-" + grants.writer_password,
    }
    # In a process of its own, as a service would: kafka-python 3.0 leaves the sockets of a producer
    # whose bootstrap failed unclosed, which this test session would report as errors. It retries the
    # refused sign-in for its bootstrap timeout (30 s), then gives up.
    result = subprocess.run(
        [sys.executable, "-c", OPEN_PRODUCER],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "KafkaTimeoutError: Unable to bootstrap" in result.stderr, result.stderr[-2000:]
    assert grants.writer_password not in result.stderr
    # kafka-python sees only the broker closing the connection; the broker's log says why.
    wait_for(lambda: sasl_kafka.log().count(refusal) > before, 30, "the broker to log the failed authentication")


OPEN_PRODUCER = """
from berg.kafka.producer import open_producer
from berg.settings import ServiceSettings, load_settings_or_exit
open_producer(load_settings_or_exit(ServiceSettings).kafka)
"""
