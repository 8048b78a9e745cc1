"""Records from a client no one here wrote (kcat, on librdkafka) in every codec Kafka allows, through the real services.

kcat compresses each batch with the codec it is given; the tests read the
broker's log segments to prove the batches really are stored in those codecs.
The services' consumer groups start at the topics' current ends, so only what a
test produces reaches them.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.record.memory_records import MemoryRecords

from berg.contracts.dead_letter import DeadLetterV1
from berg.kafka.producer import encode_event
from berg.kafka.topics import DEAD_LETTER
from berg.settings import KafkaSettings
from berg_app.stack.layout import StateLayout
from berg_app.stack.local import LocalStack
from berg_fraud.contracts import TransactionV1
from berg_fraud.topics import LABELS_INGESTED, LABELS_RAW, TRANSACTIONS_INGESTED, TRANSACTIONS_RAW, TRANSACTIONS_VALID
from tests.helpers import make_transactions, wait_for_progress
from tests.processes import ServiceProcess

pytestmark = pytest.mark.integration

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
"""kcat's names, in the order of the codec ids in a record batch's attributes (0 to 4)."""
READY_TIMEOUT_S = 300.0
"""Generous: it only bounds a hang (Great Expectations alone imports for a minute on a busy machine)."""


def kcat_produce(bootstrap: str, topic: str, codec: str, transactions: Sequence[TransactionV1], partition: int) -> None:
    """Produce with kcat: one compressed batch, keyed by user (linger lets kcat batch every line)."""
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("kcat is not installed: `apt-get install kcat` (scripts/bootstrap.sh installs it)")
    lines = "".join(f"{t.user_id}\t{encode_event(t).decode()}\n" for t in transactions)
    command = [kcat, "-b", bootstrap, "-P", "-t", topic, "-p", str(partition), "-z", codec, "-K", "\t"]
    result = subprocess.run(
        [*command, "-X", "linger.ms=1000"], input=lines.encode(), capture_output=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"kcat failed: {result.stderr.decode(errors='replace')}"


def stored_batches(stack: LocalStack, topic: str, partition: int) -> list[tuple[int, int, int, list[bytes]]]:
    """``(codec id, base offset, last offset, values)`` of every batch the broker stored for a partition."""
    folder = StateLayout.at(stack.settings.state_dir).kafka_data / f"{topic}-{partition}"
    found = []
    for segment in sorted(folder.glob("*.log")):
        records = MemoryRecords(segment.read_bytes())
        while (batch := records.next_batch()) is not None:
            values = [record.value or b"" for record in batch]
            found.append((batch.compression_type, batch.base_offset, batch.last_offset, values))
    return found


def batches_holding(
    stack: LocalStack, topic: str, partition: int, transactions: Sequence[TransactionV1]
) -> list[tuple[int, int, int]]:
    """``(codec id, base offset, last offset)`` of the stored batches holding any of these transactions."""
    needles = [str(t.event_id).encode() for t in transactions]
    return [
        (codec, base, last)
        for codec, base, last, values in stored_batches(stack, topic, partition)
        if any(needle in value for value in values for needle in needles)
    ]


def start_group_at_end(bootstrap: str, group: str, topics: Sequence[str]) -> None:
    """Commit the topics' end offsets for ``group``, so a service joining it reads only what comes next."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(partitions)
        consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in ends.items()})
    finally:
        consumer.close(autocommit=False)


class TopicTail:
    """Reads a topic from its current end: only what arrives after it was opened."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
        partitions = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or ())]
        self.consumer.assign(partitions)
        for partition, end in self.consumer.end_offsets(partitions).items():
            self.consumer.seek(partition, end)
        self.records: list[Any] = []

    def read(self) -> list[Any]:
        for batch in self.consumer.poll(timeout_ms=200).values():
            self.records.extend(batch)
        return self.records

    def transaction_ids(self) -> set[str]:
        return {TransactionV1.model_validate_json(r.value).event_id.hex for r in self.read()}

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def tails(kafka_settings: KafkaSettings) -> Iterator[dict[str, TopicTail]]:
    opened = {topic: TopicTail(kafka_settings, topic) for topic in (TRANSACTIONS_INGESTED, TRANSACTIONS_VALID)}
    opened[DEAD_LETTER] = TopicTail(kafka_settings, DEAD_LETTER)
    yield opened
    for tail in opened.values():
        tail.close()


def service(stack: LocalStack, tmp_path: Path, module: str, prefix: str, group: str, **settings: str) -> ServiceProcess:
    raw, ingested = (TRANSACTIONS_RAW, LABELS_RAW), (TRANSACTIONS_INGESTED, LABELS_INGESTED)
    start_group_at_end(stack.settings.kafka_bootstrap, group, raw if module == "berg_ingestion" else ingested)
    return ServiceProcess(
        module,
        prefix,
        {"KAFKA__BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap, "GROUP_ID": group, **settings},
        tmp_path,
        module,
    )


def ingestion(stack: LocalStack, tmp_path: Path) -> ServiceProcess:
    group = f"ingestion-{uuid.uuid4().hex[:6]}"
    return service(stack, tmp_path, "berg_ingestion", "BERG_INGESTION_", group, LANDING_DIR=str(tmp_path / "landing"))


def test_records_in_every_codec_flow_through_ingestion_and_validation(
    stack: LocalStack, tmp_path: Path, tails: dict[str, TopicTail]
) -> None:
    validation_group = f"validation-{uuid.uuid4().hex[:6]}"
    services = [
        ingestion(stack, tmp_path),
        service(
            stack, tmp_path, "berg_validation", "BERG_VALIDATION_", validation_group, DATA_DOCS_DIR=str(tmp_path / "gx")
        ),
    ]
    transactions = make_transactions(20 * len(CODECS), 41)
    by_codec = {codec: transactions[index * 20 : (index + 1) * 20] for index, codec in enumerate(CODECS)}
    expected = {t.event_id.hex for t in transactions}
    for process in services:
        process.start()
    try:
        for process in services:
            process.wait_ready(READY_TIMEOUT_S)
        for codec, chunk in by_codec.items():
            kcat_produce(stack.settings.kafka_bootstrap, TRANSACTIONS_RAW, codec, chunk, partition=0)

        valid = tails[TRANSACTIONS_VALID]
        wait_for_progress(
            lambda: expected <= valid.transaction_ids() or not all(p.alive() for p in services),
            lambda: len(valid.transaction_ids()),
            "every transaction on transactions.valid",
        )
        for process in services:
            assert process.alive(), f"{process.name} died:\n{process.log_tail()}"
            assert process.starts == 1
    finally:
        for process in services:
            process.stop()

    assert expected <= valid.transaction_ids(), f"missing: {len(expected - valid.transaction_ids())}"
    for codec_id, codec in enumerate(CODECS):
        stored = batches_holding(stack, TRANSACTIONS_RAW, 0, by_codec[codec])
        assert {found for found, _, _ in stored} == {codec_id}, f"kcat stored {codec} as codecs {stored}"


def hide_lz4(folder: Path) -> Path:
    """A folder that, first on ``PYTHONPATH``, makes ``import lz4`` fail: a service without the lz4 library."""
    package = folder / "lz4"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('raise ImportError("lz4 is hidden by the test")\n')
    return folder


def test_a_batch_the_service_cannot_decode_is_dead_lettered_and_later_records_still_arrive(
    stack: LocalStack, tmp_path: Path, tails: dict[str, TopicTail]
) -> None:
    process = ingestion(stack, tmp_path)
    # The failure: a client without the lz4 library meets an lz4 batch (kcat -z lz4).
    process.env["PYTHONPATH"] = str(hide_lz4(tmp_path / "no-lz4"))
    before, unreadable, after = (make_transactions(60, 42)[i : i + 20] for i in (0, 20, 40))
    bootstrap = stack.settings.kafka_bootstrap
    process.start()
    try:
        process.wait_ready(READY_TIMEOUT_S)
        kcat_produce(bootstrap, TRANSACTIONS_RAW, "none", before, partition=1)
        kcat_produce(bootstrap, TRANSACTIONS_RAW, "lz4", unreadable, partition=1)
        kcat_produce(bootstrap, TRANSACTIONS_RAW, "none", after, partition=1)
        readable = {t.event_id.hex for t in [*before, *after]}
        ingested, dead = tails[TRANSACTIONS_INGESTED], tails[DEAD_LETTER]

        def undecodable() -> list[DeadLetterV1]:
            envelopes = [DeadLetterV1.from_headers(r.headers) for r in dead.read()]
            return [e for e in envelopes if e.reason == "undecodable_batch" and e.original_topic == TRANSACTIONS_RAW]

        wait_for_progress(
            lambda: (readable <= ingested.transaction_ids() and bool(undecodable())) or not process.alive(),
            lambda: (len(ingested.transaction_ids()), len(undecodable())),
            "the readable records downstream and the lz4 batch dead-lettered",
        )
        assert process.alive(), f"ingestion died:\n{process.log_tail()}"
        assert process.starts == 1
        assert process.ready()
        lz4_batches = batches_holding(stack, TRANSACTIONS_RAW, 1, unreadable)
        assert {codec for codec, _, _ in lz4_batches} == {CODECS.index("lz4")}
        assert process.metric("berg_consumer_undecodable_batches_total", {"topic": TRANSACTIONS_RAW}) == len(
            lz4_batches
        )
        assert process.metric("berg_dead_letters_total", {"reason": "undecodable_batch"}) == len(lz4_batches)
    finally:
        assert process.stop() == 0, process.log_tail()

    envelopes = sorted(undecodable(), key=lambda e: e.original_offset)
    assert [(e.original_partition, e.original_offset) for e in envelopes] == [(1, base) for _, base, _ in lz4_batches]
    for envelope, (_, base, last) in zip(envelopes, lz4_batches, strict=True):
        assert (envelope.stage, envelope.error_class) == ("ingestion", "UnsupportedCodecError")
        assert f"{TRANSACTIONS_RAW}/1 offsets {base}..{last}" in envelope.error_message
    assert not {t.event_id.hex for t in unreadable} & ingested.transaction_ids()
