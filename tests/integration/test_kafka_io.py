"""Kafka I/O against a real broker: manual commits, the DLQ, a crash between sink and commit, rebalances.

Delivery is at-least-once, so sinks here are keyed like Berg's real ones and a
record may come twice; waits follow progress (records seen, offsets committed)
rather than a fixed deadline a busy machine can miss.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.record.memory_records import MemoryRecords
from prometheus_client import CollectorRegistry

from berg.contracts.dead_letter import DeadLetterV1, original_headers
from berg.kafka.consumer import BatchOutcome, ConsumerLoop, RebalanceHooks, open_consumer
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.decoding import decode_contract, split_batch
from berg.kafka.lineage import dead_letter_origin
from berg.kafka.producer import encode_event
from berg.kafka.records import RawRecord
from berg.kafka.undecodable import UndecodableBatches
from berg.settings import KafkaSettings
from berg_app.stack.layout import StateLayout
from berg_app.stack.local import LocalStack
from tests.helpers import make_transactions, wait_for, wait_for_progress

pytestmark = pytest.mark.integration

CRASH_CONSUMER = Path(__file__).with_name("idempotent_sink_consumer.py")


def committed_offsets(admin: Any, group: str) -> dict[TopicPartition, int]:
    return {tp: meta.offset for tp, meta in admin.list_group_offsets(group).get(group, {}).items() if meta.offset >= 0}


def end_offsets(settings: KafkaSettings, topic: str, partitions: int) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        offsets = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp: offset for tp, offset in offsets.items() if offset > 0}
    finally:
        consumer.close()


def read_all(settings: KafkaSettings, topic: str) -> list[Any]:
    """Every record of ``topic`` up to its end offsets now."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    records: list[Any] = []
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)

        def read() -> bool:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            return all(consumer.position(tp) >= end for tp, end in ends.items())

        wait_for_progress(read, lambda: len(records), f"the end of {topic}")
    finally:
        consumer.close()
    return records


def run_until(loop: ConsumerLoop, done: Callable[[], bool], progress: Callable[[], object], what: str) -> None:
    """Turn ``loop`` until ``done()``; fail only if ``progress()`` stands still for a long while."""
    wait_for_progress(lambda: loop.poll_once() is not None and done(), progress, what, interval_s=0)


def test_round_trip_commits_exactly_what_the_sink_confirmed(
    kafka_settings: KafkaSettings, producer: Any, new_topic: Callable[[int], str], admin: Any
) -> None:
    topic = new_topic(3)
    transactions = make_transactions(60, 1)
    for t in transactions:
        producer.send(topic, key=t.user_id.encode(), value=encode_event(t))
    producer.flush()

    sink: dict[uuid.UUID, Any] = {}
    group = f"rt-{uuid.uuid4().hex[:8]}"

    def handle(records: Sequence[RawRecord]) -> None:
        for record in records:
            event = decode_contract(type(transactions[0]), record)
            sink[event.event_id] = event

    loop = ConsumerLoop(open_consumer(kafka_settings, [topic], group), handle, poll_timeout_ms=200)
    try:
        run_until(loop, lambda: len(sink) == len(transactions), lambda: len(sink), "all events")
    finally:
        loop.close()
    assert set(sink) == {t.event_id for t in transactions}
    assert sink[transactions[0].event_id] == transactions[0]
    assert committed_offsets(admin, group) == end_offsets(kafka_settings, topic, 3)


def test_a_failing_sink_commits_nothing_and_the_batch_comes_again(
    kafka_settings: KafkaSettings, producer: Any, new_topic: Callable[[int], str], admin: Any
) -> None:
    topic = new_topic(1)
    for index in range(5):
        producer.send(topic, key=b"k", value=str(index).encode())
    producer.flush()
    attempts: list[list[bytes | None]] = []

    def flaky(records: Sequence[RawRecord]) -> None:
        attempts.append([r.value for r in records])
        if len(attempts) == 1:
            raise ConnectionError("sink unavailable")

    group = f"flaky-{uuid.uuid4().hex[:8]}"
    loop = ConsumerLoop(open_consumer(kafka_settings, [topic], group), flaky, poll_timeout_ms=200)
    outcomes: list[BatchOutcome] = []
    try:
        wait_for_progress(
            lambda: outcomes.append(loop.poll_once()) or BatchOutcome.COMMITTED in outcomes,
            lambda: len(attempts),
            "a commit",
            interval_s=0,
        )
    finally:
        loop.close()
    assert BatchOutcome.HANDLER_FAILED in outcomes
    assert attempts[0] == attempts[1] == [str(i).encode() for i in range(5)]
    assert committed_offsets(admin, group) == {TopicPartition(topic, 0): 5}


def test_a_poison_record_goes_to_the_dead_letter_topic_and_the_consumer_moves_on(
    kafka_settings: KafkaSettings, producer: Any, new_topic: Callable[[int], str], admin: Any
) -> None:
    topic, dead_letter_topic = new_topic(1), new_topic(1)
    good_before, good_after = make_transactions(2, 2)
    poison = b'{"event_id": "oops", "amount": NaN'
    producer.send(topic, key=b"user-1", value=encode_event(good_before))
    producer.send(
        topic, key=b"user-1", value=poison, headers=[("traceparent", b"00-abc-01")], timestamp_ms=1_700_000_000_000
    )
    producer.send(topic, key=b"user-1", value=encode_event(good_after))
    producer.flush()

    sink: dict[uuid.UUID, Any] = {}  # keyed like Berg's sinks: a redelivered record is stored once
    dead_letters = DeadLetterPublisher(producer, "ingestion", topic=dead_letter_topic)

    def handle(records: Sequence[RawRecord]) -> None:
        good, bad = split_batch(records, lambda r: decode_contract(type(good_before), r))
        dead_letters.publish(bad)
        sink.update((item.value.event_id, item.value) for item in good)

    group = f"poison-{uuid.uuid4().hex[:8]}"
    loop = ConsumerLoop(open_consumer(kafka_settings, [topic], group), handle, poll_timeout_ms=200)
    try:
        run_until(loop, lambda: len(sink) == 2, lambda: len(sink), "both good records")
    finally:
        loop.close()
    assert list(sink.values()) == [good_before, good_after]
    assert committed_offsets(admin, group) == {TopicPartition(topic, 0): 3}

    dead_letters_read = read_all(kafka_settings, dead_letter_topic)
    assert {dead_letter_origin(d.headers) for d in dead_letters_read} == {(topic, "0", "1")}, "one refused record"
    dead = dead_letters_read[0]
    assert (dead.key, dead.value, dead.timestamp) == (b"user-1", poison, 1_700_000_000_000)
    assert original_headers(dead.headers) == [("traceparent", b"00-abc-01")]
    envelope = DeadLetterV1.from_headers(dead.headers)
    assert (envelope.stage, envelope.reason) == ("ingestion", "undecodable")
    assert (envelope.original_topic, envelope.original_partition, envelope.original_offset) == (topic, 0, 1)


def assignments_until_records(settings: KafkaSettings, topic: str, group: str, records: int) -> list[Any]:
    """The assignments a fresh consumer of ``topic`` went through until it received ``records`` records."""
    hooks = RebalanceHooks()
    assignments: list[list[tuple[str, int]]] = []
    hooks.on_assigned(assignments.append)
    received: list[RawRecord] = []
    loop = ConsumerLoop(
        open_consumer(settings, [topic], group, rebalance_hooks=hooks), received.extend, poll_timeout_ms=200
    )
    try:
        run_until(loop, lambda: len(received) == records, lambda: (len(assignments), len(received)), "the records")
    finally:
        loop.close()
    return assignments


def test_a_fresh_consumer_joins_once_with_every_partition_and_gets_its_records(
    kafka_settings: KafkaSettings, producer: Any, new_topic: Callable[[int], str]
) -> None:
    # kafka-python 3.0 joins a group before its first metadata refresh lands unless
    # open_consumer fetches the metadata first: that join assigns nothing, a second
    # one follows, and a poll timing out inside the second can leave the consumer
    # with no partitions for good (the poison-record test once waited 60 s for
    # records that never came). Several fresh consumers make the race all but certain.
    topic = new_topic(2)
    for partition in (0, 1):
        producer.send(topic, value=b"x", partition=partition)
    producer.flush()
    for attempt in range(5):
        assignments = assignments_until_records(kafka_settings, topic, f"fresh-{attempt}-{uuid.uuid4().hex[:8]}", 2)
        assert assignments == [[(topic, 0), (topic, 1)]], f"consumer {attempt} joined as {assignments}"


def segment_batches(stack: LocalStack, topic: str, partition: int) -> list[tuple[int, Any]]:
    """``(file position, batch)`` of every record batch the broker stored for a partition (first segment)."""
    segment = StateLayout.at(stack.settings.state_dir).kafka_data / f"{topic}-{partition}" / f"{0:020d}.log"
    records = MemoryRecords(segment.read_bytes())
    found, position = [], 0
    while (batch := records.next_batch()) is not None:
        found.append((position, batch))
        position += batch.size_in_bytes
    return found


def test_a_batch_failing_its_checksum_on_the_broker_is_dead_lettered_and_skipped_while_the_partitions_flow_on(
    stack: LocalStack,
    kafka_settings: KafkaSettings,
    producer: Any,
    new_topic: Callable[[int], str],
    admin: Any,
) -> None:
    topic, dead_letter_topic = new_topic(2), new_topic(1)

    def send(partition: int, values: Sequence[bytes]) -> None:
        for value in values:
            producer.send(topic, value=value, partition=partition)
        producer.flush()  # one record batch per call

    send(0, [b"p0-0"])
    send(0, [b"p0-1", b"p0-2", b"p0-3"])
    send(0, [b"p0-4"])
    send(1, [b"p1-0", b"p1-1"])
    # Flip the last byte of partition 0's middle batch where the broker keeps it: a
    # checksum failure the broker serves as is (it checks checksums only on produce).
    [(position, batch)] = [(at, b) for at, b in segment_batches(stack, topic, 0) if b.base_offset == 1]
    assert (batch.base_offset, batch.last_offset) == (1, 3)
    segment = StateLayout.at(stack.settings.state_dir).kafka_data / f"{topic}-0" / f"{0:020d}.log"
    with segment.open("r+b") as log_file:
        log_file.seek(position + batch.size_in_bytes - 1)
        last = log_file.read(1)
        log_file.seek(position + batch.size_in_bytes - 1)
        log_file.write(bytes([last[0] ^ 0xFF]))

    seen: dict[tuple[int, int], bytes | None] = {}
    registry = CollectorRegistry()
    group = f"corrupt-{uuid.uuid4().hex[:8]}"
    loop = ConsumerLoop(
        open_consumer(kafka_settings, [topic], group),
        lambda records: seen.update(((r.partition, r.offset), r.value) for r in records),
        poll_timeout_ms=200,
        undecodable=UndecodableBatches.register(
            registry, DeadLetterPublisher(producer, "ingestion", topic=dead_letter_topic)
        ),
    )
    try:
        run_until(loop, lambda: len(seen) == 4, lambda: len(seen), "the good records around the bad batch")
        send(0, [b"p0-5"])
        send(1, [b"p1-2"])
        run_until(loop, lambda: len(seen) == 6, lambda: len(seen), "the records produced after it")
    finally:
        loop.close()

    assert seen == {
        (0, 0): b"p0-0",
        (0, 4): b"p0-4",
        (0, 5): b"p0-5",
        (1, 0): b"p1-0",
        (1, 1): b"p1-1",
        (1, 2): b"p1-2",
    }
    assert committed_offsets(admin, group) == {TopicPartition(topic, 0): 6, TopicPartition(topic, 1): 3}
    assert registry.get_sample_value("berg_consumer_undecodable_batches_total", {"topic": topic}) == 1
    assert registry.get_sample_value("berg_consumer_undecodable_offsets_total", {"topic": topic}) == 3
    [dead] = read_all(kafka_settings, dead_letter_topic)
    assert (dead.key, dead.value) == (None, b"")
    envelope = DeadLetterV1.from_headers(dead.headers)
    assert (envelope.stage, envelope.reason, envelope.error_class) == (
        "ingestion",
        "undecodable_batch",
        "CorruptRecordError",
    )
    assert (envelope.original_topic, envelope.original_partition, envelope.original_offset) == (topic, 0, 1)
    assert f"{topic}/0 offsets 1..3 (3 offsets)" in envelope.error_message


def start_crash_consumer(
    settings: KafkaSettings, topic: str, group: str, db: Path, *extra: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(CRASH_CONSUMER), settings.bootstrap_servers, topic, group, str(db), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, params).fetchall()


def test_a_consumer_killed_between_sink_write_and_commit_gets_the_record_again_and_the_sink_holds_it_once(
    kafka_settings: KafkaSettings, producer: Any, new_topic: Callable[[int], str], admin: Any, tmp_path: Path
) -> None:
    topic = new_topic(1)
    event_id = str(uuid.uuid4())
    producer.send(topic, key=b"user-1", value=event_id.encode()).get(timeout=30)
    group, db, marker = f"crash-{uuid.uuid4().hex[:8]}", tmp_path / "sink.db", tmp_path / "written"

    first = start_crash_consumer(kafka_settings, topic, group, db, "--hang-after-write", str(marker))
    try:
        # Generous: it only bounds a hang (a process start, a group join and one record).
        wait_for(marker.exists, 300, "the first consumer's sink write")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        first.kill()
        first.communicate()
    assert first.returncode == -signal.SIGKILL
    assert committed_offsets(admin, group) == {}, "the killed consumer must not have committed"
    assert query(db, "SELECT count(*) FROM deliveries") == [(1,)]

    second = start_crash_consumer(kafka_settings, topic, group, db)
    try:
        wait_for(lambda: committed_offsets(admin, group) == {TopicPartition(topic, 0): 1}, 300, "the restarted commit")
    finally:
        second.terminate()
        _, stderr = second.communicate(timeout=30)
    pids = [pid for (pid,) in query(db, "SELECT pid FROM deliveries WHERE event_id = ? ORDER BY rowid", event_id)]
    assert pids == [first.pid, second.pid], (
        f"expected one delivery per process; consumer stderr:\n{stderr.decode()[-2000:]}"
    )
    assert query(db, "SELECT event_id FROM events") == [(event_id,)]


def test_a_rebalance_loses_nothing(
    kafka_settings: KafkaSettings, producer: Any, new_topic: Callable[[int], str], admin: Any
) -> None:
    topic = new_topic(4)
    group = f"rebalance-{uuid.uuid4().hex[:8]}"
    sent = [str(uuid.uuid4()) for _ in range(400)]
    seen: set[str] = set()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def handle(records: Sequence[RawRecord]) -> None:
        time.sleep(0.01)  # a sink that takes a little time, so rebalances land mid-stream
        with lock:
            seen.update((r.value or b"").decode() for r in records)

    def run(stop: threading.Event) -> None:
        try:
            loop = ConsumerLoop(
                open_consumer(kafka_settings, [topic], group, max_poll_records=20), handle, poll_timeout_ms=100
            )
            try:
                loop.run(stop)
            finally:
                loop.close()
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    stops = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=run, args=(stop,)) for stop in stops]
    for value in sent[:200]:
        producer.send(topic, key=value.encode(), value=value.encode())
    producer.flush()
    threads[0].start()
    wait_for_progress(lambda: len(seen) >= 50, lambda: len(seen), "the first consumer to make progress")
    threads[1].start()  # joins the group: partitions move while records flow
    for value in sent[200:]:
        producer.send(topic, key=value.encode(), value=value.encode())
    producer.flush()
    try:
        wait_for_progress(lambda: seen >= set(sent), lambda: len(seen), "every record despite the rebalance")
        wait_for_progress(
            lambda: committed_offsets(admin, group) == end_offsets(kafka_settings, topic, 4),
            lambda: sum(committed_offsets(admin, group).values()),
            "all offsets committed",
        )
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
