"""Kafka I/O against a real broker: manual commits, the DLQ, a crash between sink and commit, rebalances."""

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

from berg.contracts.dead_letter import DeadLetterV1, original_headers
from berg.kafka.consumer import BatchOutcome, ConsumerLoop, open_consumer
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.decoding import decode_contract, split_batch
from berg.kafka.producer import encode_event
from berg.kafka.records import RawRecord
from berg.settings import KafkaSettings
from tests.helpers import make_transactions, wait_for

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


def read_all(settings: KafkaSettings, topic: str, expected: int, timeout_s: float = 30) -> list[Any]:
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest")
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
    finally:
        consumer.close()
    return records


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
        wait_for(lambda: loop.poll_once() is not None and len(sink) == len(transactions), 60, "all events")
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
        wait_for(lambda: outcomes.append(loop.poll_once()) or BatchOutcome.COMMITTED in outcomes, 60, "a commit")
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

    sink: list[Any] = []
    dead_letters = DeadLetterPublisher(producer, "ingestion", topic=dead_letter_topic)

    def handle(records: Sequence[RawRecord]) -> None:
        good, bad = split_batch(records, lambda r: decode_contract(type(good_before), r))
        dead_letters.publish(bad)
        sink.extend(item.value for item in good)

    group = f"poison-{uuid.uuid4().hex[:8]}"
    loop = ConsumerLoop(open_consumer(kafka_settings, [topic], group), handle, poll_timeout_ms=200)
    try:
        wait_for(lambda: loop.poll_once() is not None and len(sink) == 2, 60, "both good records")
    finally:
        loop.close()
    assert sink == [good_before, good_after]
    assert committed_offsets(admin, group) == {TopicPartition(topic, 0): 3}

    [dead] = read_all(kafka_settings, dead_letter_topic, expected=1)
    assert (dead.key, dead.value, dead.timestamp) == (b"user-1", poison, 1_700_000_000_000)
    assert original_headers(dead.headers) == [("traceparent", b"00-abc-01")]
    envelope = DeadLetterV1.from_headers(dead.headers)
    assert (envelope.stage, envelope.reason) == ("ingestion", "undecodable")
    assert (envelope.original_topic, envelope.original_partition, envelope.original_offset) == (topic, 0, 1)


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
        wait_for(marker.exists, 60, "the first consumer's sink write")
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
        wait_for(lambda: committed_offsets(admin, group) == {TopicPartition(topic, 0): 1}, 60, "the restarted commit")
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
    wait_for(lambda: len(seen) >= 50, 60, "the first consumer to make progress")
    threads[1].start()  # joins the group: partitions move while records flow
    for value in sent[200:]:
        producer.send(topic, key=value.encode(), value=value.encode())
    producer.flush()
    try:
        wait_for(lambda: seen >= set(sent), 90, "every record despite the rebalance")
        wait_for(
            lambda: committed_offsets(admin, group) == end_offsets(kafka_settings, topic, 4),
            60,
            "all offsets committed",
        )
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
