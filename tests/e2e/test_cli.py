"""The `berg` command as a user runs it: doctor, up, status, demo, down, and nothing left behind."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from kafka import KafkaConsumer, TopicPartition

from berg.kafka.topics import PLATFORM_TOPICS
from berg.settings import KafkaSettings
from berg.simulator.traffic import SimulatedEvent
from berg_app.simulator.bounds import bounded
from berg_app.simulator.producer import produce_events
from berg_fraud.simulator.generator import SimulationConfig, simulate
from berg_fraud.simulator.labels import LabelPolicy
from berg_fraud.topics import LABELS_VALID, TRANSACTIONS_VALID
from berg_fraud.use_case import fraud
from tests.e2e.commands import berg, processes_mentioning
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_doctor_passes_here_and_says_how_to_fix_what_is_missing(user_env: dict[str, str]) -> None:
    assert berg(user_env, "doctor").returncode == 0
    broken = berg({**user_env, "BERG_PROMETHEUS_BIN": "no-such-prometheus"}, "doctor")
    assert broken.returncode == 1
    assert "apt-get install prometheus" in broken.stdout


@pytest.mark.timeout(3600)  # only bounds a hang: six services start, then a demo, on what may be a loaded machine
def test_up_status_demo_down_leaves_no_process_behind(user_env: dict[str, str]) -> None:
    state_dir = user_env["BERG_STATE_DIR"]
    try:
        up = berg(user_env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "transactions.raw" in up.stdout

        status = berg(user_env, "status")
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("healthy") == 9
        # Serving is live and waits for the first promoted model.
        assert "live, not ready yet" in status.stdout
        # supervisord, kafka, prometheus, alertmanager and the six Berg services
        assert len(processes_mentioning(state_dir)) >= 10

        demo = berg(user_env, "demo", "--story", "data-plane", "--scored-events", "400", "--malformed-share", "0.1")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "arrived on transactions.valid" in demo.stdout
        assert "refused by ingestion: undecodable" in demo.stdout
        assert "refused by validation: expectation_failed" in demo.stdout
        assert "records consumed by ingestion, as scraped by Prometheus" in demo.stdout
        # The features service aggregated the run into Feast, and the demo read it back online.
        assert "Feast online store: user (user_transaction_aggregates)" in demo.stdout
        assert "Feast online store: merchant (merchant_aggregates)" in demo.stdout
    finally:
        down = berg(user_env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_mentioning(state_dir) == []
    after = berg(user_env, "status")
    assert after.returncode == 1
    assert "DOWN" in after.stdout


def test_up_refuses_ports_that_are_taken(user_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(user_env["BERG_PORTS__PROMETHEUS"])))
        blocker.listen()
        result = berg(user_env, "up")
    assert result.returncode == 1
    assert "ports already in use" in result.stdout
    assert processes_mentioning(user_env["BERG_STATE_DIR"]) == []


ALL_TOPICS = (*fraud().topics, *PLATFORM_TOPICS)
"""The stack's topics: the reference use case's and the platform's."""


def topic_end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    """The end offset of every partition of Berg's topics."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="berg-test", enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in ALL_TOPICS
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        return dict(consumer.end_offsets(partitions))
    finally:
        consumer.close()


def records_on(offsets: dict[TopicPartition, int], topic: str) -> int:
    return sum(offset for partition, offset in offsets.items() if partition.topic == topic)


def landed_rows(state_dir: str) -> dict[str, int]:
    """Rows in ingestion's landing zone (its sink), per kind."""
    counts = {}
    for kind in ("transactions", "labels"):
        folder = Path(state_dir) / "landing" / kind
        counts[kind] = ds.dataset(folder, format="parquet", partitioning="hive").count_rows() if folder.is_dir() else 0
    return counts


def simulated_traffic(seed: int, days: float) -> tuple[list[SimulatedEvent], Counter[str]]:
    """A few hundred valid transactions and their labels due so far, ending now; and their count by kind."""
    now = datetime.now(UTC)
    # Many quick manual-review labels, so that labels flow too within a short run.
    labels = LabelPolicy(manual_review_share=0.3, review_median_hours=1, review_max_hours=3)
    config = SimulationConfig(start=now - timedelta(days=days), seed=seed, users=40, merchants=20, labels=labels)
    events = list(bounded(simulate(config), max_scored=300, until=now))
    return events, Counter(event.kind for event in events)


@pytest.mark.timeout(3600)
def test_up_heals_a_stack_whose_kafka_and_a_service_were_stopped_and_loses_nothing(user_env: dict[str, str]) -> None:
    env = {**user_env, "BERG_SERVICES": '["ingestion", "validation"]'}
    state_dir = env["BERG_STATE_DIR"]
    bootstrap = f"127.0.0.1:{env['BERG_PORTS__KAFKA']}"
    kafka = KafkaSettings(bootstrap_servers=bootstrap, client_id="berg-test")

    def flowed_through(expected: Counter[str]) -> bool:
        offsets = topic_end_offsets(bootstrap)
        landed = landed_rows(state_dir)
        return (
            records_on(offsets, TRANSACTIONS_VALID) == landed["transactions"] == expected["scored"]
            and records_on(offsets, LABELS_VALID) == landed["labels"] == expected["label"]
        )

    try:
        up = berg(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        events, first = simulated_traffic(seed=11, days=3)
        assert first["scored"] > 0
        assert first["label"] > 0
        produce_events(kafka, events)
        # Generous: only bounds a hang (the records take seconds on an idle machine).
        wait_for(lambda: flowed_through(first), 600, "the first records downstream", interval_s=1.0)
        offsets_before, landed_before = topic_end_offsets(bootstrap), landed_rows(state_dir)

        # As a user would: through the stack's own supervisor.
        supervisorctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", f"{state_dir}/config/supervisord.conf"]
        stopped = subprocess.run(
            [*supervisorctl, "stop", "kafka", "ingestion"], capture_output=True, text=True, timeout=300, check=False
        )
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        broken = berg(env, "status")
        assert broken.returncode == 1
        assert re.search(r"kafka\s+.\s+STOPPED", broken.stdout), broken.stdout
        assert "berg up starts them" in broken.stdout

        healed = berg(env, "up")
        assert healed.returncode == 0, healed.stdout + healed.stderr
        assert "Restarted kafka, ingestion (they were not running); all 5 components healthy" in healed.stdout
        assert berg(env, "status").returncode == 0
        assert topic_end_offsets(bootstrap) == offsets_before
        assert landed_rows(state_dir) == landed_before

        # Idempotent: a healthy stack is left alone.
        again = berg(env, "up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "nothing to do: all 5 components healthy" in again.stdout

        # The healed stack carries new traffic, exactly once, on top of the old.
        more, second = simulated_traffic(seed=12, days=1)
        produce_events(kafka, more)
        wait_for(lambda: flowed_through(first + second), 600, "the later records downstream", interval_s=1.0)
        after = topic_end_offsets(bootstrap)
        for topic in ALL_TOPICS:
            grown = records_on(after, topic) - records_on(offsets_before, topic)
            assert grown == {
                "transactions.raw": second["scored"],
                "labels.raw": second["label"],
                "transactions.ingested": second["scored"],
                "labels.ingested": second["label"],
                "transactions.valid": second["scored"],
                "labels.valid": second["label"],
            }.get(topic, 0), topic
    finally:
        down = berg(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_mentioning(state_dir) == []
