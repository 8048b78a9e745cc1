"""The producer every Berg stage uses: acks=all, idempotent, bytes in and bytes out."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer
from pydantic import BaseModel

from berg.kafka.topics import MAX_MESSAGE_BYTES
from berg.settings import KafkaSettings

__all__ = ["encode_event", "open_producer"]


def open_producer(settings: KafkaSettings, *, linger_ms: int = 5) -> Any:
    """A ``KafkaProducer`` that waits for every in-sync replica (``acks="all"``).

    Idempotence keeps retries from writing a record twice. Keys and values are
    bytes; encode with :func:`encode_event`. Requests may carry records up to
    the raw topics' limit (:data:`~berg.kafka.topics.MAX_MESSAGE_BYTES`).
    """
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_request_size=MAX_MESSAGE_BYTES + 64 * 1024,
        request_timeout_ms=settings.request_timeout_ms,
    )


def encode_event(event: BaseModel) -> bytes:
    """A contract event as the UTF-8 JSON bytes that go on the wire."""
    return event.model_dump_json().encode("utf-8")
