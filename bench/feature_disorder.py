"""Streaming user aggregates under disorder: events/s with 0 %, 10 % and 100 % of events newest-first.

The features service's aggregation alone (no Kafka, no Feast), driven the way its
handler drives it: per micro-batch of ``batch_max_records`` transactions, accept each
one, then compute every changed row once. Each disordered stream is timed against the
in-order stream in the same run, and against the algorithm before issue 15 (each
accepted event recomputes every later row of its user, each row by rescanning the
user's windows), on the same streams of ``--baseline-events`` (that one is cubic in
the disorder, so it gets a shorter stream).

The orders are ``tests.feature_oracle.disordered``: one user, events one second apart
(all within the default hour of allowed lateness, so every one is aggregated); 10 %:
every tenth block of 100 events newest-first; 100 %: the whole stream newest-first,
the worst case of issue 15. The rows are checked against the oracle by
``services/features/tests/test_aggregates.py``.

    uv run python bench/feature_disorder.py --events 3000 --baseline-events 500
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.feature_oracle

from berg_features.aggregates import SECOND, WindowAggregator, WindowEvent, WindowRow, rescan_row
from berg_features.settings import FeaturesSettings
from tests.feature_oracle import disordered
from tests.fraud_schema import USER_AGGREGATES

SHARES = (0.0, 0.1, 1.0)


class RescanAggregator:
    """The algorithm before issue 15: an accepted event recomputes, by rescanning the user's
    windows, the row of every event of the user at or after it."""

    def __init__(self, allowed_lateness_us: int) -> None:
        self._lateness = allowed_lateness_us
        self._events: dict[str, list[WindowEvent]] = {}
        self._ids: set[str] = set()

    def add(self, event: WindowEvent) -> list[WindowRow]:
        events = self._events.setdefault(event.key, [])
        if event.event_id in self._ids or (events and events[-1].event_us - event.event_us > self._lateness):
            return []
        bisect.insort_right(events, event)
        self._ids.add(event.event_id)
        first = bisect.bisect_left([e.event_us for e in events], event.event_us)
        return [rescan_row(USER_AGGREGATES, events, at) for at in sorted({e.event_us for e in events[first:]})]


def streaming(stream: Sequence[WindowEvent], batch: int, lateness_us: int, repeat: int) -> tuple[float, int]:
    """Seconds (the best of ``repeat`` runs: the machine is shared) and rows computed, micro-batch
    by micro-batch as the handler does."""
    best, rows = math.inf, 0
    for _ in range(repeat):
        aggregator = WindowAggregator(USER_AGGREGATES, lateness_us)
        rows = 0
        started = time.perf_counter()
        for start in range(0, len(stream), batch):
            for event in stream[start : start + batch]:
                aggregator.accept(event)
            rows += len(aggregator.flush())
        best = min(best, time.perf_counter() - started)
    return best, rows


def rescanning(stream: Sequence[WindowEvent], batch: int, lateness_us: int) -> tuple[float, int]:
    """The same with the old algorithm (its handler pushed the last of each row's recomputations in a batch)."""
    aggregator = RescanAggregator(lateness_us)
    rows = 0
    started = time.perf_counter()
    for start in range(0, len(stream), batch):
        emitted: dict[tuple[str, int], WindowRow] = {}
        for event in stream[start : start + batch]:
            recomputed = aggregator.add(event)
            rows += len(recomputed)
            emitted.update(((row.key, row.at_us), row) for row in recomputed)
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--baseline-events", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7, help="best of this many runs of the new algorithm")
    args = parser.parse_args()
    settings = FeaturesSettings()
    batch, lateness_us = settings.batch_max_records, int(settings.allowed_lateness_s * SECOND)
    if max(args.events, args.baseline_events) * SECOND > lateness_us:
        parser.error(f"at one second apart, more than {settings.allowed_lateness_s:.0f} events are partly late")
    print(f"one user, events 1 s apart, batch {batch}, allowed lateness {settings.allowed_lateness_s:.0f} s")
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}, new algorithm: best of {args.repeat} runs")
    print()
    print(f"{'reversed':>8} {'events':>7} {'events/s':>10} {'vs in order':>11} {'rows computed':>14}")
    in_order = 0.0
    for share in SHARES:
        seconds, rows = streaming(disordered(args.events, share), batch, lateness_us, args.repeat)
        rate = args.events / seconds
        in_order = in_order or rate
        print(f"{share:>8.0%} {args.events:>7} {rate:>10.0f} {rate / in_order:>11.2f} {rows:>14}")
    print()
    print(f"against the algorithm before issue 15, {args.baseline_events} events:")
    print(f"{'reversed':>8} {'new ev/s':>10} {'old ev/s':>10} {'new/old':>8} {'new rows':>9} {'old rows':>9}")
    for share in SHARES:
        stream = disordered(args.baseline_events, share)
        new_seconds, new_rows = streaming(stream, batch, lateness_us, args.repeat)
        old_seconds, old_rows = rescanning(stream, batch, lateness_us)
        new_rate, old_rate = len(stream) / new_seconds, len(stream) / old_seconds
        print(
            f"{share:>8.0%} {new_rate:>10.0f} {old_rate:>10.0f} {new_rate / old_rate:>8.1f} {new_rows:>9} {old_rows:>9}"
        )


if __name__ == "__main__":
    main()
