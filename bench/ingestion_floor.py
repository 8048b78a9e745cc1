"""Ingestion's CPU per event against its library floor: the same hops with the same libraries, in one run.

Starts its own local stack (Kafka on free ports, in a temporary state dir),
produces N transactions to ``transactions.raw``, then runs, over the same records:

- floor: what any ingestion has to do with kafka-python and pyarrow, and nothing
  more. ``KafkaConsumer.poll`` of the raw bytes (gathered into micro-batches like
  Berg's loop), ``json.loads`` of each value and ``datetime.fromisoformat`` of its
  event time (what the parquet rows need), the same landing rows (contract fields
  plus ingested_at, topic, partition, offset) written per event date with
  ``pq.write_table`` to a temporary file, fsynced and renamed like the landing
  zone does, then ``KafkaProducer.send`` of the same bytes with the same headers to
  ``transactions.ingested`` through the same producer (acks=all, idempotent, same
  batch size), partition ``p mod n``, flush, wait for every ack, commit.
- Berg: ``ConsumerLoop`` + ``IngestionHandler`` (pydantic decode against the
  contract, landing zone with its dedup on ``event_id``, publish with lineage headers, commit).

Each is timed as this process's CPU time (``time.process_time``: every thread,
kafka-python's included; the broker is another process) and as events/s from the
first poll that returned records. Rounds run in the order floor, Berg, Berg, floor, ... so
warm-up and drift fall on both. Prints CPU us/event and events/s of each and the
ratios Berg/floor (goal: CPU per event <= 1.3x the floor's).

    uv run python bench/ingestion_floor.py --events 30000
    uv run python bench/ingestion_floor.py --events 30000 --profile 15   # then a cProfile of each path
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from benchkit import (
    Measured,
    commit_polled,
    free_ports,
    gather_polls,
    measured,
    measured_service_path,
    produce_transactions,
)
from prometheus_client import CollectorRegistry

from berg.kafka.consumer import open_consumer
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.producer import open_producer
from berg.usecase import resolve_use_case
from berg_app.stack.local import LocalStack
from berg_app.stack.settings import StackSettings
from berg_fraud.topics import TRANSACTIONS_INGESTED, TRANSACTIONS_RAW
from berg_ingestion.handler import IngestionHandler, IngestionMetrics
from berg_ingestion.landing import LandingZone
from berg_ingestion.rows import landing_schema
from berg_ingestion.settings import IngestionSettings

Profiler = Callable[[Callable[[], None]], None] | None


def _write_parquet(partition: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    partition.mkdir(parents=True, exist_ok=True)
    name = f"part-{uuid.uuid4().hex}.parquet"
    temporary = partition / f".{name}.tmp"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), temporary)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, partition / name)
    directory = os.open(partition, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def floor_path(stack: LocalStack, events: int, landing: Path, group: str, profile: Profiler = None) -> Measured:
    """The library floor; see the module docstring."""
    settings = IngestionSettings()
    schema = landing_schema(resolve_use_case(settings.use_case).scored.contract)
    producer = open_producer(stack.kafka_settings)
    partitions = len(producer.partitions_for(TRANSACTIONS_INGESTED))
    handled = 0
    with measured() as clock:
        consumer = clock.watch(
            open_consumer(stack.kafka_settings, [TRANSACTIONS_RAW], group, max_poll_records=settings.batch_max_records)
        )

        def run() -> None:
            nonlocal handled
            while handled < events:
                records = gather_polls(consumer, settings)
                if not records:
                    continue
                ingested_at = datetime.now(UTC)
                by_date: dict[date, list[dict[str, Any]]] = defaultdict(list)
                for record in records:
                    row = json.loads(record.value)
                    row["event_time"] = datetime.fromisoformat(row["event_time"])
                    row["ingested_at"] = ingested_at
                    row["kafka_topic"] = record.topic
                    row["kafka_partition"] = record.partition
                    row["kafka_offset"] = record.offset
                    by_date[row["event_time"].date()].append(row)
                for event_date, rows in by_date.items():
                    _write_parquet(landing / "transactions" / f"event_date={event_date.isoformat()}", rows, schema)
                stamp = ("berg.ingested_at", ingested_at.isoformat().encode())
                futures = [
                    producer.send(
                        TRANSACTIONS_INGESTED,
                        key=record.key,
                        value=record.value,
                        headers=[
                            *record.headers,
                            stamp,
                            ("berg.source.topic", record.topic.encode()),
                            ("berg.source.partition", str(record.partition).encode()),
                            ("berg.source.offset", str(record.offset).encode()),
                        ],
                        partition=record.partition % partitions,
                    )
                    for record in records
                ]
                producer.flush(timeout=30)
                for future in futures:
                    future.get(timeout=30)
                commit_polled(consumer, records)
                handled += len(records)

        (profile or (lambda call: call()))(run)
        result = clock.result(handled)
    consumer.close(autocommit=False)
    producer.close()
    return result


def berg_path(stack: LocalStack, events: int, landing: Path, group: str, profile: Profiler = None) -> Measured:
    """Berg's ingestion: ``ConsumerLoop`` + ``IngestionHandler`` as the service builds them."""
    settings = IngestionSettings()
    use_case = resolve_use_case(settings.use_case)
    producer = open_producer(stack.kafka_settings)
    handler = IngestionHandler(
        LandingZone(landing),
        (use_case.scored, use_case.labels),
        producer,
        DeadLetterPublisher(producer, "ingestion"),
        IngestionMetrics.register(CollectorRegistry()),
        max_record_bytes=settings.max_record_bytes,
    )
    result = measured_service_path(stack, TRANSACTIONS_RAW, group, handler, settings, events, profile)
    producer.close()
    return result


def print_profile(name: str, run: Callable[[Profiler], Measured], top: int) -> None:
    profiler = cProfile.Profile()
    run(profiler.runcall)
    print(f"\n--- cProfile of the {name} path: top {top} by own time ---")
    pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each path, in the order F B B F ...")
    parser.add_argument("--profile", type=int, default=0, help="then profile each path once; print this many rows")
    args = parser.parse_args()
    os.environ.setdefault("BERG_USE_CASE", "fraud")
    totals = {"floor": Measured(0, 0.0, 0.0), "berg": Measured(0, 0.0, 0.0)}
    paths = {"floor": floor_path, "berg": berg_path}
    with tempfile.TemporaryDirectory(prefix="berg-bench-") as state:
        root = Path(state)
        stack = LocalStack(StackSettings(state_dir=root, ports=free_ports(), services=[], topic_partitions=3))
        try:
            stack.up()
            produce_transactions(stack, TRANSACTIONS_RAW, args.events)
            for round_ in range(args.rounds):
                order = ("floor", "berg") if round_ % 2 == 0 else ("berg", "floor")
                for name in order:
                    run = paths[name](stack, args.events, root / f"landing-{name}-{round_}", f"bench-{name}-{round_}")
                    totals[name] += run
                    print(
                        f"round {round_} {name:5s}: {run.cpu_us_per_event:6.1f} us CPU/event, "
                        f"{run.events_per_s:8.0f} events/s ({run.events} events, {run.wall_s:.2f} s); "
                        f"of the CPU, garbage collection {run.gc_us_per_event:.1f} us/event "
                        f"({run.full_collections} full)"
                    )
            for name in paths if args.profile else ():
                path = paths[name]
                print_profile(
                    name,
                    lambda profile, path=path, name=name: path(
                        stack, args.events, root / f"landing-{name}-profile", f"bench-{name}-profile", profile
                    ),
                    args.profile,
                )
        finally:
            stack.down()
    floor, berg = totals["floor"], totals["berg"]
    if not args.rounds:
        return
    settings = IngestionSettings()
    print(f"\nevents: {args.events} x {args.rounds} rounds, batch_max_records: {settings.batch_max_records}")
    for name, total in (("floor (kafka-python + json + pyarrow)", floor), ("Berg ingestion path", berg)):
        print(f"{name:38s} {total.cpu_us_per_event:6.1f} us CPU/event {total.events_per_s:8.0f} events/s")
    print(
        f"ratio Berg/floor: CPU per event {berg.cpu_us_per_event / floor.cpu_us_per_event:.2f} (goal <= 1.30), "
        f"throughput {berg.events_per_s / floor.events_per_s:.2f}"
    )


if __name__ == "__main__":
    main()
