"""The consumer loop's commit discipline, as pure logic over a scripted consumer.

The same behaviour against a real broker (redelivery after kill -9, the DLQ,
rebalances) is in tests/integration/test_kafka_io.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from kafka import OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, KafkaConnectionError, KafkaTimeoutError
from prometheus_client import CollectorRegistry

from berg.contracts.dead_letter import DeadLetterV1
from berg.kafka import consumer as consumer_module
from berg.kafka.consumer import BatchOutcome, ConsumerLoop, ConsumerMetrics
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.records import RawRecord
from berg.kafka.undecodable import UndecodableBatches
from tests.helpers import RecordingProducer
from tests.record_batches import PartitionedConsumer, Record, batch_bytes, corrupted

pytestmark = pytest.mark.unit


class SteppingClock:
    """The loop's clock in these tests: it moves only when the scripted consumer polls.

    A poll that finds nothing takes its whole timeout, one that returns records
    a millisecond; so micro-batch waits come out the same on an idle machine and
    on a loaded one.
    """

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SteppingClock:
    stepping = SteppingClock()
    monkeypatch.setattr(consumer_module, "time", stepping)
    return stepping


class ScriptedConsumer:
    """Returns scripted poll results and records commits and seeks (no broker: pure loop logic)."""

    def __init__(
        self, batches: list[list[Record]], commit_error: Exception | None = None, clock: SteppingClock | None = None
    ) -> None:
        self.batches = batches
        self.commit_error = commit_error
        self.clock = clock
        self.commits: list[dict[Any, Any]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.polls = 0

    def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        self.polls += 1
        if self.clock is not None:
            self.clock.now += (timeout_ms if not self.batches else 1) / 1000
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


def test_each_partition_commits_one_past_its_highest_offset_whatever_the_order() -> None:
    consumer = ScriptedConsumer([records(0, [7, 5]) + records(1, [40]) + records(0, [6])])
    loop = ConsumerLoop(consumer, lambda records: None)
    assert loop.poll_once() is BatchOutcome.COMMITTED
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


def test_micro_batches_gather_several_polls_up_to_the_record_bound(clock: SteppingClock) -> None:
    consumer = ScriptedConsumer(
        [records(0, [1, 2]), records(0, [3]), records(1, [7, 8, 9]), records(0, [4])], clock=clock
    )
    batches: list[list[int]] = []
    loop = ConsumerLoop(
        consumer, lambda batch: batches.append([r.offset for r in batch]), batch_max_records=5, batch_max_wait_ms=200
    )
    assert loop.poll_once() is BatchOutcome.COMMITTED
    assert batches == [[1, 2, 3, 7, 8]]
    assert loop.poll_once() is BatchOutcome.COMMITTED
    assert batches[1] == [9, 4]


def test_a_micro_batch_is_handed_over_when_its_wait_is_up(clock: SteppingClock) -> None:
    consumer = ScriptedConsumer([records(0, [1])], clock=clock)
    batches: list[list[int]] = []
    loop = ConsumerLoop(
        consumer,
        lambda batch: batches.append([r.offset for r in batch]),
        batch_max_records=100,
        batch_max_wait_ms=50,
        poll_timeout_ms=10,
    )
    started = clock.now
    assert loop.poll_once() is BatchOutcome.COMMITTED
    assert batches == [[1]]
    assert consumer.polls == 6, "one poll with the record, then empty 10 ms polls until the 50 ms were up"
    assert clock.now - started == pytest.approx(0.05, abs=0.002), "handed over when the wait was up"


def run_until_idle(loop: ConsumerLoop, turns: int = 20) -> list[BatchOutcome]:
    outcomes = [loop.poll_once() for _ in range(turns)]
    assert outcomes[-1] is BatchOutcome.EMPTY, outcomes
    return outcomes


@pytest.mark.parametrize(
    ("bad_batch", "error_class"),
    [
        (batch_bytes(2, [b"a", b"b", b"c"], codec=5), "UnsupportedCodecError"),
        (corrupted(batch_bytes(2, [b"a", b"b", b"c"])), "CorruptRecordError"),
    ],
    ids=["unknown-codec", "checksum"],
)
def test_a_batch_the_client_cannot_decode_is_dead_lettered_and_skipped_while_other_partitions_flow(
    bad_batch: bytes, error_class: str
) -> None:
    # Partition 0: offsets 0-1, the bad batch 2-4, offsets 5-6. Partition 1 flows throughout.
    consumer = PartitionedConsumer({0: [0, 1, 5, 6], 1: [0, 1, 2, 3]}, bad={0: bad_batch})
    producer = RecordingProducer()
    registry = CollectorRegistry()
    seen: list[tuple[int, int]] = []
    loop = ConsumerLoop(
        consumer,
        lambda batch: seen.extend((r.partition, r.offset) for r in batch),
        undecodable=UndecodableBatches.register(registry, DeadLetterPublisher(producer, "ingestion")),
    )

    outcomes = run_until_idle(loop)

    assert sorted(seen) == [(0, 0), (0, 1), (0, 5), (0, 6), (1, 0), (1, 1), (1, 2), (1, 3)]
    assert BatchOutcome.UNDECODABLE_SKIPPED in outcomes
    assert consumer.committed() == {0: 7, 1: 4}
    [sent] = producer.to("berg.dlq")
    assert (sent["key"], sent["value"]) == (None, b"")
    envelope = DeadLetterV1.from_headers(sent["headers"])
    assert (envelope.stage, envelope.reason, envelope.error_class) == ("ingestion", "undecodable_batch", error_class)
    assert (envelope.original_topic, envelope.original_partition, envelope.original_offset) == ("t", 0, 2)
    assert "t/0 offsets 2..4 (3 offsets)" in envelope.error_message
    assert registry.get_sample_value("berg_consumer_undecodable_batches_total", {"topic": "t"}) == 1
    assert registry.get_sample_value("berg_consumer_undecodable_offsets_total", {"topic": "t"}) == 3


def test_records_gathered_before_the_failure_are_handed_over_first_and_the_skip_starts_where_they_end() -> None:
    # The bad batch starts at 0 on partition 0; partition 1's records arrive in the same micro-batch.
    consumer = PartitionedConsumer({0: [3], 1: [0, 1]}, bad={0: batch_bytes(0, [b"a", b"b", b"c"], codec=6)})
    batches: list[list[tuple[int, int]]] = []
    loop = ConsumerLoop(
        consumer, lambda batch: batches.append([(r.partition, r.offset) for r in batch]), batch_max_records=10
    )
    assert loop.poll_once() is BatchOutcome.COMMITTED
    assert batches == [[(1, 0), (1, 1)]]
    assert loop.poll_once() is BatchOutcome.UNDECODABLE_SKIPPED
    assert consumer.seeks == [(TopicPartition("t", 0), 3)]
    assert loop.poll_once() is BatchOutcome.COMMITTED
    assert batches[1] == [(0, 3)]
    assert consumer.committed() == {0: 4, 1: 2}


def test_a_failing_handler_rewinds_before_the_bad_batch_which_is_met_again_and_dead_lettered_once() -> None:
    consumer = PartitionedConsumer({0: [0, 1, 5]}, bad={0: batch_bytes(2, [b"a", b"b", b"c"], codec=5)})
    producer = RecordingProducer()
    handed: list[list[int]] = []

    def flaky(batch: Sequence[RawRecord]) -> None:
        handed.append([r.offset for r in batch])
        if len(handed) == 1:
            raise ConnectionError("sink down")

    loop = ConsumerLoop(
        consumer,
        flaky,
        batch_max_records=10,
        undecodable=UndecodableBatches(DeadLetterPublisher(producer, "s")),
    )
    assert loop.poll_once() is BatchOutcome.HANDLER_FAILED
    outcomes = run_until_idle(loop)
    assert handed == [[0, 1], [0, 1], [5]]
    assert outcomes[:3] == [BatchOutcome.COMMITTED, BatchOutcome.UNDECODABLE_SKIPPED, BatchOutcome.COMMITTED]
    assert len(producer.to("berg.dlq")) == 1
    assert consumer.committed() == {0: 6}


def test_a_dead_letter_that_fails_leaves_the_batch_in_place_and_is_tried_again_without_polling() -> None:
    consumer = PartitionedConsumer({0: [3]}, bad={0: batch_bytes(0, [b"a", b"b", b"c"], codec=7)})

    class FlakyProducer(RecordingProducer):
        def flush(self, timeout: float) -> None:
            if len(self.sent) == 1:
                raise KafkaTimeoutError("broker unavailable")

    producer = FlakyProducer()
    loop = ConsumerLoop(consumer, lambda _: None, undecodable=UndecodableBatches(DeadLetterPublisher(producer, "s")))
    assert loop.poll_once() is BatchOutcome.DEAD_LETTER_FAILED
    assert consumer.seeks == []
    assert consumer.commits == []
    polls = consumer.polls
    assert loop.poll_once() is BatchOutcome.UNDECODABLE_SKIPPED
    assert consumer.polls == polls, "the retry must not poll the failed partition again"
    assert len(producer.to("berg.dlq")) == 2
    assert consumer.committed() == {0: 3}


def test_an_error_raised_outside_any_record_batch_is_not_taken_for_one() -> None:
    class Unreachable(ScriptedConsumer):
        def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
            raise KafkaConnectionError("no broker")

    with pytest.raises(KafkaConnectionError):
        ConsumerLoop(Unreachable([]), lambda _: None).poll_once()
