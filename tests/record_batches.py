"""Record batches a Kafka client cannot decode, and a consumer that serves them as kafka-python does.

For unit tests of the code that reads Kafka: :class:`PartitionedConsumer` serves
good records from scripted partition logs, and unpacks a bad batch's real bytes
with kafka-python's own fetcher code, so the error leaves ``poll()`` exactly as
the client raises it (the integration tests do the same against the real broker).
"""

from __future__ import annotations

import struct
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

from kafka import TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import calc_crc32c

__all__ = ["PartitionedConsumer", "Record", "batch_bytes", "corrupted"]

Record = namedtuple("Record", "topic partition offset key value headers timestamp")
"""The fields of a kafka-python ``ConsumerRecord`` that Berg reads."""


def batch_bytes(base_offset: int, values: Sequence[bytes], *, codec: int = 0) -> bytes:
    """A format v2 record batch as a broker serves it; a ``codec`` kafka-python does not know, if asked."""
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta, value in enumerate(values):
        builder.append(delta, timestamp=0, key=None, value=value, headers=[])
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base_offset)
    if codec:
        attributes_at = DefaultRecordBatch.ATTRIBUTES_OFFSET
        struct.pack_into(">h", raw, attributes_at, codec)
        struct.pack_into(">I", raw, DefaultRecordBatch.CRC_OFFSET, calc_crc32c(bytes(raw[attributes_at:])))
    return bytes(raw)


def corrupted(raw: bytes) -> bytes:
    """``raw`` with its last byte flipped: the batch fails its checksum."""
    return raw[:-1] + bytes([raw[-1] ^ 0xFF])


class PartitionedConsumer:
    """Serves partition logs in offset order; a bad batch raises from kafka-python's fetcher, like ``poll()``.

    Like kafka-python, a poll that drained records from other partitions hands them
    over and raises on the next poll; polling the failed partition again without a
    seek past the batch is refused (kafka-python 3.0 would never return).
    """

    def __init__(self, logs: dict[int, list[int]], bad: dict[int, bytes], topic: str = "t") -> None:
        self.topic = topic
        self.logs = {TopicPartition(topic, p): offsets for p, offsets in logs.items()}
        self.bad = {TopicPartition(topic, p): raw for p, raw in bad.items()}
        self.positions = dict.fromkeys(self.logs, 0)
        self.commits: list[dict[Any, Any]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.failed_at: dict[TopicPartition, int] = {}
        self.polls = 0

    def _bad_span(self, tp: TopicPartition) -> tuple[int, int] | None:
        raw = self.bad.get(tp)
        if raw is None:
            return None
        header = DefaultRecordBatch(raw)
        return header.base_offset, header.last_offset

    def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        self.polls += 1
        room = max_records or 500
        drained: dict[TopicPartition, list[Record]] = {}
        failing: TopicPartition | None = None
        for tp in sorted(self.logs):
            position = self.positions[tp]
            assert self.failed_at.get(tp) != position, f"polled {tp} again at {position} without seeking past the batch"
            span = self._bad_span(tp)
            if span is not None and span[0] <= position <= span[1]:
                failing = tp
                continue
            end = span[0] if span is not None and position < span[0] else None
            offsets = [o for o in self.logs[tp] if o >= position and (end is None or o < end)][:room]
            if offsets:
                drained[tp] = [Record(self.topic, tp.partition, o, b"k", str(o).encode(), [], 0) for o in offsets]
                self.positions[tp] = offsets[-1] + 1
                room -= len(offsets)
        if failing is not None and not drained:
            self.failed_at[failing] = self.positions[failing]
            Fetcher.PartitionRecords(self.positions[failing], failing, MemoryRecords(self.bad[failing])).take(room)
            raise AssertionError("kafka-python decoded the bad batch")
        return drained

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)

    def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.positions[tp] = offset
        self.failed_at.pop(tp, None)

    def commit(self, offsets: dict[Any, Any]) -> None:
        self.commits.append(offsets)

    def highwater(self, tp: TopicPartition) -> int:
        return max(self.logs[tp], default=-1) + 1

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.highwater(tp) for tp in partitions}

    def committed(self) -> dict[int, int]:
        latest: dict[int, int] = {}
        for commit in self.commits:
            latest.update({tp.partition: meta.offset for tp, meta in commit.items()})
        return latest
