"""The data plane under crashes: ingestion and validation killed with SIGKILL again and again, nothing lost.

20,000 valid transactions (plus their labels) and about 1,000 malformed records
of every class go in, in waves. While they flow, the test SIGKILLs a random
service process after each wave, and the services kill themselves now and then
between the sink write and the offset commit (``FAULT_CRASH_BEFORE_COMMIT``;
always after the first batch of each service's first life); every dead process
is restarted. At the end every valid transaction is on
``transactions.valid`` and landed exactly once, each malformed record is in
the DLQ once per original offset and on no downstream topic, both groups have
no lag, and redeliveries did happen.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from berg.kafka.lineage import dead_letter_origin
from berg.kafka.producer import open_producer
from berg.kafka.topics import DEAD_LETTER
from berg.simulator.traffic import MALFORMED_CLASS_HEADER, SimulatedEvent
from berg_app.simulator.bounds import bounded
from berg_app.simulator.producer import send_events
from berg_app.stack.local import LocalStack
from berg_fraud.contracts import TransactionV1
from berg_fraud.simulator.generator import SimulationConfig, simulate
from berg_fraud.simulator.malformed import MALFORMED_CLASS_NAMES, MalformedOptions
from berg_fraud.simulator.scenarios import make_scenario
from berg_fraud.topics import (
    LABELS_INGESTED,
    LABELS_RAW,
    LABELS_VALID,
    TRANSACTIONS_INGESTED,
    TRANSACTIONS_RAW,
    TRANSACTIONS_VALID,
)
from berg_ingestion.landing import LandingZone
from tests.helpers import running_stack, wait_for
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VALID_TRANSACTIONS = 20_000
MALFORMED_SHARE = 0.05
WAVES = 10
TEST_KILLS_PER_WAVE = 1
CRASH_CHANCE = 0.15


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: the counts below are exact only if nothing else writes to these topics."""
    with running_stack(tmp_path_factory.mktemp("reliability")) as local:
        yield local


def simulated_events() -> list[SimulatedEvent]:
    now = datetime.now(UTC)
    config = SimulationConfig(
        start=now - timedelta(days=60),
        seed=2026,
        users=500,
        scenario=make_scenario("malformed", now - timedelta(days=60), malformed_share=MALFORMED_SHARE),
        malformed=MalformedOptions(future_reference=now),
    )
    events: list[SimulatedEvent] = []
    valid = 0
    for event in bounded(simulate(config), until=now):
        events.append(event)
        valid += event.kind == "scored"
        if valid >= VALID_TRANSACTIONS:
            break
    assert valid == VALID_TRANSACTIONS, "the simulated span must hold 20,000 transactions before now"
    return events


def topic_reader(bootstrap: str, topic: str) -> KafkaConsumer:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())])
    consumer.seek_to_beginning()
    return consumer


def read_topic(consumer: KafkaConsumer, into: list[Any]) -> list[Any]:
    """What arrived since the last call, appended to ``into``."""
    for batch in consumer.poll(timeout_ms=300).values():
        into.extend(batch)
    return into


def read_to_end(consumer: KafkaConsumer, into: list[Any]) -> list[Any]:
    """Everything up to the topic's current end, appended to ``into``."""
    ends = consumer.end_offsets(list(consumer.assignment()))
    wait_for(
        lambda: (
            read_topic(consumer, into) is not None and all(consumer.position(tp) >= end for tp, end in ends.items())
        ),
        60,
        "the end of the topic",
    )
    return into


@pytest.mark.timeout(1200)
def test_crashes_lose_nothing_and_duplicate_nothing(own_stack: LocalStack, tmp_path: Path) -> None:
    bootstrap = own_stack.settings.kafka_bootstrap
    landing_dir = tmp_path / "landing"
    common = {"KAFKA__BOOTSTRAP_SERVERS": bootstrap, "FAULT_CRASH_BEFORE_COMMIT": str(CRASH_CHANCE)}
    services = [
        ServiceProcess(
            "berg_ingestion",
            "BERG_INGESTION_",
            {**common, "LANDING_DIR": str(landing_dir), "BATCH_MAX_RECORDS": "300"},
            tmp_path,
            "ingestion",
        ),
        ServiceProcess(
            "berg_validation",
            "BERG_VALIDATION_",
            {**common, "DATA_DOCS_DIR": str(tmp_path / "gx"), "BATCH_MAX_RECORDS": "500"},
            tmp_path,
            "validation",
        ),
    ]
    events = simulated_events()
    expected_valid = {uuid.UUID(e.truth.subject_id) for e in events if e.kind == "scored"}
    injected = Tally(e.truth.malformed_class for e in events if e.kind == "malformed")
    assert set(injected) == set(MALFORMED_CLASS_NAMES), "every malformed class is injected"
    assert sum(injected.values()) >= VALID_TRANSACTIONS * MALFORMED_SHARE * 0.9

    chaos = random.Random(7)
    crashes = 0

    def revive() -> None:
        nonlocal crashes
        for service in services:
            if not service.alive():
                if service.process is not None:
                    assert service.process.returncode == -9, f"{service.name} died otherwise:\n{service.log_tail()}"
                    crashes += 1
                service.start()

    producer = open_producer(own_stack.kafka_settings)
    try:
        # The first life of each service crashes after its first batch's sink write and before the commit,
        # so at least one redelivery is certain: later lives often spend their short time in a group
        # rebalance and handle no batch at all (seen in CI: no ingestion fault in a whole run).
        for service in services:
            service.start(FAULT_CRASH_BEFORE_COMMIT="1")
        wave_size = len(events) // WAVES + 1
        for wave in range(WAVES):
            send_events(producer, events[wave * wave_size : (wave + 1) * wave_size])
            for _ in range(TEST_KILLS_PER_WAVE):
                victim = chaos.choice(services)
                revive()
                victim.wait_ready()
                # A random point in the victim's work: there is no condition to poll for.
                time.sleep(chaos.uniform(0.0, 1.5))
                if victim.alive():
                    victim.kill9()
                    crashes += 1
                revive()
    finally:
        producer.close()

    # Calm: no more faults; every process restarted without them until the work is done.
    for service in services:
        service.kill9()
    crashes += len(services)
    for service in services:
        service.start(FAULT_CRASH_BEFORE_COMMIT="0")

    consumers = {
        topic: topic_reader(bootstrap, topic)
        for topic in (TRANSACTIONS_VALID, LABELS_VALID, DEAD_LETTER, TRANSACTIONS_INGESTED)
    }
    seen: dict[str, list[Any]] = {topic: [] for topic in consumers}
    landing = LandingZone(landing_dir)

    def valid_ids() -> set[uuid.UUID]:
        return {
            TransactionV1.model_validate_json(r.value).event_id
            for r in read_topic(consumers[TRANSACTIONS_VALID], seen[TRANSACTIONS_VALID])
        }

    def dead_letters() -> dict[tuple[str, ...], Any]:
        # One entry per raw record: a record refused by validation is identified by
        # the raw coordinates ingestion stamped on it (it may reach validation twice).
        unique = {}
        for record in read_topic(consumers[DEAD_LETTER], seen[DEAD_LETTER]):
            unique.setdefault(dead_letter_origin(record.headers), record)
        return unique

    try:
        wait_for(lambda: valid_ids() >= expected_valid, 300, "every valid transaction on transactions.valid", 1.0)
        wait_for(lambda: len(dead_letters()) >= sum(injected.values()), 300, "every malformed record in the DLQ", 1.0)
        assert crashes >= 10

        # Each malformed record is in the DLQ once per original coordinates, by its class.
        read_to_end(consumers[DEAD_LETTER], seen[DEAD_LETTER])
        unique_dead = dead_letters()
        by_class = Tally(
            dict(record.headers).get(MALFORMED_CLASS_HEADER, b"?").decode() for record in unique_dead.values()
        )
        assert by_class == injected, f"dead letters by class {dict(by_class)} != injected {dict(injected)}"
        malformed_bytes = {e.value for e in events if e.kind == "malformed"}
        assert all(record.value in malformed_bytes for record in unique_dead.values()), "dead letters keep their bytes"

        # No malformed record went downstream.
        for topic in (TRANSACTIONS_VALID, LABELS_VALID):
            read_to_end(consumers[topic], seen[topic])
            assert not [r for r in seen[topic] if MALFORMED_CLASS_HEADER in dict(r.headers)]

        # The landing zone holds every valid transaction exactly once.
        landed = landing.read("transactions").column("event_id").to_pylist()
        landed_valid = [i for i in landed if uuid.UUID(i) in expected_valid]
        assert len(landed_valid) == len(set(landed_valid)) == len(expected_valid)
        assert len(landed) == len(set(landed)), "no event landed twice"

        # Redeliveries happened: the crash path was really exercised.
        ingested = read_to_end(consumers[TRANSACTIONS_INGESTED], seen[TRANSACTIONS_INGESTED])
        ingested_ids = [TransactionV1.model_validate_json(r.value).event_id for r in ingested]
        assert len(ingested_ids) > len(set(ingested_ids)), "no record was redelivered: the crash path was not exercised"

        # Lag returns to zero for both groups.
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        probe = KafkaConsumer(bootstrap_servers=bootstrap)
        try:

            def lag(group: str, topics: tuple[str, ...]) -> int:
                ends = probe.end_offsets([TopicPartition(t, p) for t in topics for p in probe.partitions_for_topic(t)])
                committed = {tp: meta.offset for tp, meta in admin.list_group_offsets(group).get(group, {}).items()}
                return sum(end - committed.get(tp, 0) for tp, end in ends.items())

            wait_for(lambda: lag("berg-ingestion", (TRANSACTIONS_RAW, LABELS_RAW)) == 0, 300, "ingestion lag 0")
            wait_for(
                lambda: lag("berg-validation", (TRANSACTIONS_INGESTED, LABELS_INGESTED)) == 0, 60, "validation lag 0"
            )
        finally:
            admin.close()
            probe.close()
    finally:
        for consumer in consumers.values():
            consumer.close()
        for service in services:
            service.stop()
