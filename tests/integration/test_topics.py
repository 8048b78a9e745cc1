"""Topic creation against the real broker: missing topics are created, existing ones get the spec's configs."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from berg.kafka.topics import TopicSpec, ensure_topics
from berg.settings import KafkaSettings

pytestmark = pytest.mark.integration


def config_of(admin: Any, topic: str, key: str) -> str:
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    return str(described["topic"][topic][key]["value"])


def test_missing_topics_are_created_and_existing_ones_brought_up_to_date(
    kafka_settings: KafkaSettings, admin: Any
) -> None:
    old, new = f"old-{uuid.uuid4().hex[:8]}", f"new-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(old, 2, 1)])  # as an older Berg made it: default record limit
    specs = [TopicSpec(name, 3, {"max.message.bytes": "5242880"}) for name in (old, new)]

    assert ensure_topics(kafka_settings, specs) == [new]
    assert config_of(admin, old, "max.message.bytes") == "5242880"
    assert config_of(admin, new, "max.message.bytes") == "5242880"
    partitions = admin.describe_topics([old, new])
    assert {t["name"]: len(t["partitions"]) for t in partitions} == {old: 2, new: 3}, "partition counts are kept"
    assert ensure_topics(kafka_settings, specs) == []
