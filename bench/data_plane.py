"""The data plane end to end: raw -> [ingestion] -> ingested -> [validation] -> valid, in events/s, with 1 and 2
instances per service.

For each instance count, starts its own local stack (Kafka on free ports, in a
temporary state dir) and runs ingestion and validation as separate processes,
``python -m berg_ingestion`` / ``python -m berg_validation`` with the environment
``berg up`` gives them (``berg_app.stack.services.service_programs``: landing dir,
Data Docs dir, 100 ms micro-batch wait), N copies of each in one consumer group
(each copy on its own health port; validation copies each keep their own Data Docs
folder). Once every copy answers ``/readyz``, this process sends N pre-encoded
simulated transactions to ``transactions.raw`` as fast as kafka-python can and
counts what reaches the end (``transactions.valid`` plus ``berg.dlq``) from the
topics' end offsets, until every event is through or the time limit passes.

Prints events/s from the first send to the last event through, the seconds the
sending took (it shares the machine's cores with the services), and each service's
CPU per event (user + system time of its processes, from ``/proc``). Everything is
stopped at the end, also on a time-out (which it reports).

    uv run python bench/data_plane.py --events 40000
    uv run python bench/data_plane.py --events 40000 --instances 1,2 --time-limit-s 150
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from benchkit import free_ports
from kafka import KafkaConsumer, TopicPartition

from berg.kafka.producer import open_producer
from berg.kafka.topics import DEAD_LETTER
from berg_app.stack.local import LocalStack
from berg_app.stack.services import service_programs
from berg_app.stack.settings import StackSettings
from berg_fraud.simulator.generator import SimulationConfig, simulate
from berg_fraud.topics import TRANSACTIONS_RAW, TRANSACTIONS_VALID

_TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def transactions(events: int) -> list[tuple[bytes | None, bytes]]:
    """``events`` simulated transactions (seed 5, from 2026-01-01) as (key, value) bytes."""
    config = SimulationConfig(start=datetime(2026, 1, 1, tzinfo=UTC), seed=5)
    scored = (event for event in simulate(config) if event.kind == "scored")
    return [(event.key, event.value) for event in itertools.islice(scored, events)]


def through(consumer: KafkaConsumer, partitions: list[TopicPartition]) -> int:
    return sum(consumer.end_offsets(partitions).values())


def run_plane(records: list[tuple[bytes | None, bytes]], instances: int, time_limit_s: float, logs: Path) -> None:
    events = len(records)
    with tempfile.TemporaryDirectory(prefix="berg-bench-") as state:
        settings = StackSettings(state_dir=Path(state), ports=free_ports(), services=[], topic_partitions=3)
        stack = LocalStack(settings)
        processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        try:
            stack.up()
            programs = service_programs(
                settings.model_copy(update={"services": ["ingestion", "validation"]}), stack.layout
            )
            ports = []
            for program in programs:
                prefix = f"BERG_{program.name.upper()}_"
                for copy in range(instances):
                    port = _free_port()
                    environment = {**os.environ, **program.environment, f"{prefix}WEB__PORT": str(port)}
                    if program.name == "validation":
                        environment[f"{prefix}DATA_DOCS_DIR"] = str(stack.layout.root / f"gx-{copy}")
                    log = open(logs / f"{program.name}-{instances}-{copy}.log", "wb")  # noqa: SIM115
                    processes.append(
                        (program.name, subprocess.Popen(program.command, env=environment, stdout=log, stderr=log))
                    )
                    ports.append(port)
            deadline = time.monotonic() + 180
            while not all(_ready(port) for port in ports):
                if time.monotonic() > deadline or any(p.poll() is not None for _, p in processes):
                    raise RuntimeError(f"services did not become ready; see {logs}")
                time.sleep(0.5)
            cpu_before = {p.pid: _cpu_s(p.pid) for _, p in processes}
            counter = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
            ends = [
                TopicPartition(topic, partition)
                for topic in (TRANSACTIONS_VALID, DEAD_LETTER)
                for partition in counter.partitions_for_topic(topic) or ()
            ]
            producer = open_producer(stack.kafka_settings, linger_ms=20)
            started = time.perf_counter()
            for key, value in records:
                producer.send(TRANSACTIONS_RAW, key=key, value=value)
            producer.flush()
            sent_s = time.perf_counter() - started
            limit = started + time_limit_s
            done = through(counter, ends)
            while done < events and time.perf_counter() < limit:
                time.sleep(0.2)
                done = through(counter, ends)
            elapsed = time.perf_counter() - started
            cpu = {name: 0.0 for name, _ in processes}
            for name, process in processes:
                cpu[name] += _cpu_s(process.pid) - cpu_before[process.pid]
            producer.close()
            counter.close()
            outcome = "all through" if done >= events else f"TIME-OUT: {done} of {events} through"
            print(
                f"{instances} instance(s) per service: {done / elapsed:8.0f} events/s end to end "
                f"({done} events in {elapsed:.1f} s, {outcome}; sending took {sent_s:.1f} s)"
            )
            print(
                "  CPU per event: "
                + ", ".join(f"{name} {seconds / max(done, 1) * 1e6:.0f} us" for name, seconds in cpu.items())
            )
        finally:
            for _, process in processes:
                process.terminate()
            for _, process in processes:
                try:
                    process.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    process.kill()
            stack.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--instances", default="1,2", help="instances per service, one run each")
    parser.add_argument("--time-limit-s", type=float, default=150.0, help="per run, from the first send")
    args = parser.parse_args()
    os.environ.setdefault("BERG_USE_CASE", "fraud")
    records = transactions(args.events)
    logs = Path(tempfile.mkdtemp(prefix="berg-bench-logs-"))
    print(f"events: {args.events}, {os.cpu_count()} CPUs, service logs in {logs}, python {sys.version.split()[0]}")
    for instances in (int(count) for count in args.instances.split(",")):
        run_plane(records, instances, args.time_limit_s, logs)


if __name__ == "__main__":
    main()
