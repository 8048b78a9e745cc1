"""Validation's whole path (GX included) against its library floor: the same hops with the same libraries, in one run.

Starts its own local stack (Kafka on free ports, in a temporary state dir),
produces N transactions to ``transactions.ingested``, then runs, over the same records:

- floor: ``KafkaConsumer.poll`` of the raw bytes (micro-batches of the service's
  ``batch_max_records``, like Berg's loop), ``json.loads`` of each value, a pandas
  frame built column by column with the dtypes the suites expect (``string``
  columns, ``datetime64[ns, UTC]`` by ``pd.to_datetime`` of the ISO text), then
  the *same* Great Expectations work: ``Suites.validate`` of
  ``berg_validation.suites`` with suites from ``build_suites`` (one in-memory
  context, built once, like the service). The floor does not re-implement GX's
  runs: the issue asks for the same validation of the same batch, and the suites
  object is where that is defined (row-level ``BOOLEAN_ONLY`` run, ``COMPLETE``
  reruns of the failed expectations, batch and passed-row suites). Then rows that
  failed go to ``berg.dlq`` with the same bytes and one reason header (all rows
  when the batch is quarantined), the others to ``transactions.valid`` with the
  same bytes and headers plus ``berg.validated_at``, partition ``p mod n``, through
  the same producer (acks=all, idempotent), flush, wait for every ack, commit.
- Berg: ``ConsumerLoop`` + ``ValidationHandler`` as the service builds them
  (pydantic decode, redelivery drop, the frame's rows taken from each model as it
  is decoded, the same suites, per-row routing with the DLQ envelope, metrics), without the Data Docs
  result sink (best-effort history; the end-to-end bench runs the service with it).

CPU per event is this process's CPU time (every thread, the broker excluded);
events/s is timed from the first poll that returned records. Rounds run floor, Berg, Berg,
floor, ... Prints both and the ratios Berg/floor (goal: CPU per event <= 1.3x).

    uv run python bench/validation_floor.py --events 60000
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
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

from berg.contracts.shape import contract_columns
from berg.contracts.shape_pandas import STRING_DTYPE
from berg.kafka.consumer import open_consumer
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.producer import open_producer
from berg.kafka.topics import DEAD_LETTER
from berg.usecase import UseCase, resolve_use_case
from berg_app.stack.local import LocalStack
from berg_app.stack.settings import StackSettings
from berg_fraud.topics import TRANSACTIONS_INGESTED, TRANSACTIONS_VALID
from berg_validation.handler import ValidationHandler, ValidationMetrics
from berg_validation.settings import ValidationSettings
from berg_validation.suites import Suites, build_suites, create_context

Profiler = Callable[[Callable[[], None]], None] | None


def _settings(use_case: UseCase) -> Any:
    return ValidationSettings[use_case.rules]()  # type: ignore[name-defined]


def _floor_frame(columns: Any, values: list[dict[str, Any]]) -> pd.DataFrame:
    data: dict[str, pd.Series] = {}
    for column in columns:
        raw = [value[column.name] for value in values]
        if column.kind == "string":
            data[column.name] = pd.Series(raw, dtype=STRING_DTYPE)
        elif column.kind == "timestamp":
            data[column.name] = pd.Series(pd.to_datetime(raw, utc=True, format="ISO8601")).astype("datetime64[ns, UTC]")
        else:
            data[column.name] = pd.Series(
                raw, dtype={"float": "float64", "integer": "int64", "boolean": "bool"}[column.kind]
            )
    return pd.DataFrame(data, index=pd.RangeIndex(len(values)))


def floor_path(stack: LocalStack, events: int, suites: Suites, group: str, profile: Profiler = None) -> Measured:
    """The library floor; see the module docstring."""
    use_case = resolve_use_case(os.environ["BERG_USE_CASE"])
    settings = _settings(use_case)
    stream = use_case.scored
    columns = contract_columns(stream.contract, exclude={"schema_version"})
    producer = open_producer(stack.kafka_settings)
    partitions = len(producer.partitions_for(TRANSACTIONS_VALID))
    handled = 0
    with measured() as clock:
        consumer = clock.watch(
            open_consumer(
                stack.kafka_settings, [TRANSACTIONS_INGESTED], group, max_poll_records=settings.batch_max_records
            )
        )

        def run() -> None:
            nonlocal handled
            while handled < events:
                records = gather_polls(consumer, settings)
                if not records:
                    continue
                now = datetime.now(UTC)
                verdict = suites.validate(
                    _floor_frame(columns, [json.loads(record.value) for record in records]), stream.name, now
                )
                stamp = ("berg.validated_at", now.isoformat().encode())
                futures = []
                for row, record in enumerate(records):
                    failed = verdict.quarantined or verdict.failures_of(row)
                    futures.append(
                        producer.send(
                            DEAD_LETTER if failed else TRANSACTIONS_VALID,
                            key=record.key,
                            value=record.value,
                            headers=[*record.headers, ("berg.errors.reason", b"expectation_failed")]
                            if failed
                            else [*record.headers, stamp],
                            partition=None if failed else record.partition % partitions,
                        )
                    )
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


def berg_path(stack: LocalStack, events: int, suites: Suites, group: str, profile: Profiler = None) -> Measured:
    """Berg's validation: ``ConsumerLoop`` + ``ValidationHandler`` as the service builds them."""
    use_case = resolve_use_case(os.environ["BERG_USE_CASE"])
    settings = _settings(use_case)
    producer = open_producer(stack.kafka_settings)
    handler = ValidationHandler(
        suites,
        use_case.streams,
        producer,
        DeadLetterPublisher(producer, "validation"),
        ValidationMetrics.register(CollectorRegistry()),
    )
    result = measured_service_path(stack, TRANSACTIONS_INGESTED, group, handler, settings, events, profile)
    producer.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each path, in the order F B B F ...")
    parser.add_argument("--profile", type=int, default=0, help="then profile each path once; print this many rows")
    args = parser.parse_args()
    os.environ.setdefault("BERG_USE_CASE", "fraud")
    use_case = resolve_use_case(os.environ["BERG_USE_CASE"])
    settings = _settings(use_case)
    # Built once per process, as the service does; both paths validate with the same suites.
    suites = build_suites(create_context(None), use_case.streams, settings.rules)
    totals = {"floor": Measured(0, 0.0, 0.0), "berg": Measured(0, 0.0, 0.0)}
    paths = {"floor": floor_path, "berg": berg_path}
    with tempfile.TemporaryDirectory(prefix="berg-bench-") as state:
        stack = LocalStack(StackSettings(state_dir=Path(state), ports=free_ports(), services=[], topic_partitions=3))
        try:
            stack.up()
            produce_transactions(stack, TRANSACTIONS_INGESTED, args.events)
            for round_ in range(args.rounds):
                order = ("floor", "berg") if round_ % 2 == 0 else ("berg", "floor")
                for name in order:
                    run = paths[name](stack, args.events, suites, f"bench-{name}-{round_}")
                    totals[name] += run
                    print(
                        f"round {round_} {name:5s}: {run.cpu_us_per_event:6.1f} us CPU/event, "
                        f"{run.events_per_s:8.0f} events/s ({run.events} events, {run.wall_s:.2f} s); "
                        f"of the CPU, garbage collection {run.gc_us_per_event:.1f} us/event "
                        f"({run.full_collections} full)"
                    )
            for name in paths if args.profile else ():
                profiler = cProfile.Profile()
                paths[name](stack, args.events, suites, f"bench-{name}-profile", profiler.runcall)
                print(f"\n--- cProfile of the {name} path: top {args.profile} by own time ---")
                pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(args.profile)
        finally:
            stack.down()
    if not args.rounds:
        return
    floor, berg = totals["floor"], totals["berg"]
    print(f"\nevents: {args.events} x {args.rounds} rounds, batch_max_records: {settings.batch_max_records}")
    print(
        f"floor (kafka-python + json + pandas + same GX suites): {floor.cpu_us_per_event:6.1f} us CPU/event "
        f"{floor.events_per_s:8.0f} events/s"
    )
    print(
        f"Berg validation path:                                  {berg.cpu_us_per_event:6.1f} us CPU/event "
        f"{berg.events_per_s:8.0f} events/s"
    )
    print(
        f"ratio Berg/floor: CPU per event {berg.cpu_us_per_event / floor.cpu_us_per_event:.2f} (goal <= 1.30), "
        f"throughput {berg.events_per_s / floor.events_per_s:.2f}"
    )


if __name__ == "__main__":
    main()
