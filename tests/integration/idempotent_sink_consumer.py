"""A consumer process for the crash test: ConsumerLoop into an idempotent SQLite sink.

Run as ``python idempotent_sink_consumer.py BOOTSTRAP TOPIC GROUP DB [--hang-after-write MARKER]``.
Every delivery is logged in ``deliveries``; ``events`` holds each event_id once
(``INSERT OR IGNORE``). With ``--hang-after-write`` the sink writes, commits the
SQLite transaction, touches MARKER and then hangs, so the test can kill -9 the
process after the sink write and before the Kafka commit.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from berg.kafka.consumer import ConsumerLoop, open_consumer
from berg.kafka.records import RawRecord
from berg.settings import KafkaSettings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("group")
    parser.add_argument("db", type=Path)
    parser.add_argument("--hang-after-write", type=Path)
    args = parser.parse_args()

    db = sqlite3.connect(args.db, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, offset_ INTEGER)")
    db.execute("CREATE TABLE IF NOT EXISTS deliveries (event_id TEXT, pid INTEGER)")

    def sink(records: Sequence[RawRecord]) -> None:
        with db:
            db.execute("BEGIN")
            for record in records:
                event_id = (record.value or b"").decode()
                db.execute("INSERT INTO deliveries VALUES (?, ?)", (event_id, os.getpid()))
                db.execute("INSERT OR IGNORE INTO events VALUES (?, ?)", (event_id, record.offset))
        if args.hang_after_write is not None:
            args.hang_after_write.touch()
            while True:
                time.sleep(1)

    settings = KafkaSettings(bootstrap_servers=args.bootstrap, client_id="crash-test")
    loop = ConsumerLoop(open_consumer(settings, [args.topic], args.group), sink, poll_timeout_ms=200)
    loop.run(threading.Event())


if __name__ == "__main__":
    main()
