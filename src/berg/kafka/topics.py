"""The topics of ARCHITECTURE.md and how to create them.

A deployment's topics are its use case's (each stream's raw, ingested and valid topic:
``UseCase.topics``) and the platform's own (:data:`PLATFORM_TOPICS`: the prediction
log and the dead-letter topic).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from berg.kafka.security import client_security
from berg.settings import KafkaSettings

__all__ = [
    "DEAD_LETTER",
    "MAX_MESSAGE_BYTES",
    "PLATFORM_TOPICS",
    "PREDICTIONS",
    "SHADOW_PREDICTIONS",
    "TopicSpec",
    "ensure_topics",
    "topic_specs",
]

log = logging.getLogger(__name__)

PREDICTIONS = "predictions"
SHADOW_PREDICTIONS = "predictions.shadow"
"""A shadow challenger's scores (:class:`~berg.contracts.ShadowPredictionV1`), apart from the champion's."""
DEAD_LETTER = "berg.dlq"

PLATFORM_TOPICS = (PREDICTIONS, SHADOW_PREDICTIONS, DEAD_LETTER)
"""The topics every deployment has, whatever its use case."""

# Nothing is lost: dead letters are kept until someone has looked at them.
_DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600 * 1000

MAX_MESSAGE_BYTES = 5 * 1024 * 1024
"""Raw topics and the DLQ accept records up to 5 MiB, so an oversized record reaches
ingestion (which refuses anything over its own limit, 1 MiB by default) and can be
dead-lettered whole instead of being refused, unseen, at the producer."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: name, partitions and extra topic configs."""

    name: str
    partitions: int
    configs: Mapping[str, str]


def topic_specs(
    stream_topics: Sequence[str], raw_topics: Collection[str], default_partitions: int, overrides: Mapping[str, int]
) -> list[TopicSpec]:
    """Every topic of a deployment with its partition count: the use case's, then the platform's.

    Args:
        stream_topics: the use case's topics (``UseCase.topics``).
        raw_topics: those of them producers write to (``UseCase.raw_topics``): they take records up to
            :data:`MAX_MESSAGE_BYTES`, as the dead-letter topic does.
        default_partitions: partitions for a topic with no override.
        overrides: topic name to partition count.

    Raises:
        ValueError: an override names a topic the deployment does not have.
    """
    names = (*stream_topics, *PLATFORM_TOPICS)
    unknown = set(overrides) - set(names)
    if unknown:
        raise ValueError(f"partition overrides for unknown topics: {sorted(unknown)}; known: {list(names)}")
    large = {*raw_topics, DEAD_LETTER}
    specs = []
    for name in names:
        configs: dict[str, str] = {}
        if name in large:
            configs["max.message.bytes"] = str(MAX_MESSAGE_BYTES)
        if name == DEAD_LETTER:
            configs["retention.ms"] = str(_DEAD_LETTER_RETENTION_MS)
        specs.append(TopicSpec(name, overrides.get(name, default_partitions), configs))
    return specs


def ensure_topics(settings: KafkaSettings, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet and set the configs of the ones that do.

    Partition counts of existing topics are left as they are (changing them would
    move keys between partitions); their configs are set to the spec's, so a state
    directory from an older Berg gets, say, the larger record limit.

    Returns:
        The names of the topics this call created.
    """
    admin: Any = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
        **client_security(settings),
    )
    try:
        existing = set(admin.list_topics())
        specs = list(specs)
        missing = [spec for spec in specs if spec.name not in existing]
        to_update = [
            ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=dict(spec.configs))
            for spec in specs
            if spec.name in existing and spec.configs
        ]
        if to_update:
            admin.alter_configs(to_update, incremental=True)
        created = []
        for spec in missing:
            try:
                admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, 1, topic_configs=dict(spec.configs))],
                    validate_only=False,
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                log.info("topic %s was created concurrently", spec.name)
        return created
    finally:
        admin.close()
