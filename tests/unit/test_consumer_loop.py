"""The consumer loop's commit discipline, as pure logic over a scripted consumer.

The same behaviour against a real broker (redelivery after kill -9, the DLQ,
rebalances) is in tests/integration/test_kafka_io.py.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import pytest
from kafka import OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError
from prometheus_client import CollectorRegistry

from berg.kafka.consumer import BatchOutcome, ConsumerLoop, ConsumerMetrics
from berg.kafka.records import RawRecord

pytestmark = pytest.mark.unit

Record = namedtuple("Record", "topic partition offset key value headers timestamp")


class ScriptedConsumer:
    """Returns scripted poll results and records commits and seeks (no broker: pure loop logic)."""

    def __init__(self, batches: list[list[Record]], commit_error: Exception | None = None) -> None:
        self.batches = batches
        self.commit_error = commit_error
        self.commits: list[dict[Any, Any]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.polls = 0

    def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        self.polls += 1
        if not self.batches:
            return {}
        batch = self.batches.pop(0)
        if max_records is not None and len(batch) > max_records:
            self.batches.insert(0, batch[max_records:])
            batch = batch[:max_records]
        grouped: dict[TopicPartition, list[Record]] = {}
        for record in batch:
            grouped.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
        return grouped

    def commit(self, offsets: dict[Any, Any]) -> None:
        if self.commit_error is not None:
            raise self.commit_error
        self.commits.append(offsets)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))

    def highwater(self, partition: TopicPartition) -> int:
        return 100


def records(partition: int, offsets: Sequence[int]) -> list[Record]:
    return [Record("t", partition, offset, b"k", b"v", [], 0) for offset in offsets]


def test_offsets_are_committed_after_the_handler_returns_one_past_the_last_record() -> None:
    consumer = ScriptedConsumer([records(0, [5, 6, 7]) + records(1, [40])])
    seen: list[RawRecord] = []
    loop = ConsumerLoop(consumer, seen.extend)
    assert loop.poll_once() is BatchOutcome.COMMITTED
    assert [r.offset for r in seen] == [5, 6, 7, 40]
    assert consumer.commits == [
        {TopicPartition("t", 0): OffsetAndMetadata(8, "", -1), TopicPartition("t", 1): OffsetAndMetadata(41, "", -1)}
    ]


def test_a_failing_handler_commits_nothing_and_rewinds_to_the_start_of_the_batch() -> None:
    consumer = ScriptedConsumer([records(0, [5, 6]) + records(2, [9])])

    def failing(_: Sequence[RawRecord]) -> None:
        raise ConnectionError("sink down")

    assert ConsumerLoop(consumer, failing).poll_once() is BatchOutcome.HANDLER_FAILED
    assert consumer.commits == []
    assert sorted(consumer.seeks) == [(TopicPartition("t", 0), 5), (TopicPartition("t", 2), 9)]


def test_a_commit_lost_to_a_rebalance_is_reported_and_the_loop_goes_on() -> None:
    consumer = ScriptedConsumer([records(0, [1]), records(0, [2])], commit_error=CommitFailedError("rebalanced"))
    loop = ConsumerLoop(consumer, lambda _: None)
    assert loop.poll_once() is BatchOutcome.COMMIT_FAILED
    assert loop.poll_once() is BatchOutcome.COMMIT_FAILED
    assert loop.poll_once() is BatchOutcome.EMPTY


def test_metrics_count_records_outcomes_and_lag() -> None:
    registry = CollectorRegistry()
    consumer = ScriptedConsumer([records(0, [10, 11])])
    ConsumerLoop(consumer, lambda _: None, metrics=ConsumerMetrics.register(registry)).poll_once()
    assert registry.get_sample_value("berg_consumer_records_total", {"topic": "t"}) == 2
    assert registry.get_sample_value("berg_consumer_batches_total", {"outcome": "committed"}) == 1
    assert registry.get_sample_value("berg_consumer_lag_records", {"topic": "t", "partition": "0"}) == 100 - 12


def test_micro_batches_gather_several_polls_up_to_the_record_bound() -> None:
    consumer = ScriptedConsumer([records(0, [1, 2]), records(0, [3]), records(1, [7, 8, 9]), records(0, [4])])
    batches: list[list[int]] = []
    loop = ConsumerLoop(
        consumer, lambda batch: batches.append([r.offset for r in batch]), batch_max_records=5, batch_max_wait_ms=200
    )
    assert loop.poll_once() is BatchOutcome.COMMITTED
    assert batches == [[1, 2, 3, 7, 8]]
    assert loop.poll_once() is BatchOutcome.COMMITTED
    assert batches[1] == [9, 4]


def test_a_micro_batch_is_handed_over_when_its_wait_is_up() -> None:
    consumer = ScriptedConsumer([records(0, [1])])
    batches: list[list[int]] = []
    loop = ConsumerLoop(
        consumer,
        lambda batch: batches.append([r.offset for r in batch]),
        batch_max_records=100,
        batch_max_wait_ms=50,
        poll_timeout_ms=10,
    )
    assert loop.poll_once() is BatchOutcome.COMMITTED
    assert batches == [[1]]
    assert consumer.polls >= 2, "it kept polling for more until the wait was up"
