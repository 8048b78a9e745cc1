"""The monitoring exporter's ``/metrics`` scrape with 50 features, against the scrape interval and a bare registry.

Fills the exporter's state (``MonitoringState``) for ``--versions`` model versions
with full drift and quality windows of ``--features`` features, computes one
snapshot (what the exporter does every ``recompute_interval_s``, off the scrape
path), then times, interleaved:

- the scrape: ``prometheus_client.generate_latest`` over the exporter's registry
  (the snapshot collector and the reader's counters), what ``/metrics`` answers;
- baseline: ``generate_latest`` over a registry of plain ``Gauge`` objects holding
  the same number of samples, set beforehand (the cheapest way prometheus_client
  exports that many series).

Prints the median scrape time, the ratio to the baseline, and the share of the
local stack's scrape interval (15 s) it takes; also the time of one snapshot
recomputation for comparison. Goal: well under the scrape interval.

    uv run python bench/monitoring_scrape.py
    uv run python bench/monitoring_scrape.py --features 50 --versions 4 --runs 51
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from rich.console import Console
from rich.table import Table

from berg.contracts.predictions import PredictionV3
from berg_fraud.use_case import problem_card
from berg_monitoring.drift_window import DriftSpec
from berg_monitoring.metrics import MonitoringMetrics, SnapshotCollector
from berg_monitoring.snapshot import Reference, SnapshotSettings, compute_snapshot
from berg_monitoring.statistics import ReferenceProfile
from berg_monitoring.windows import MonitoringState, Verdict
from berg_pipelines.runtime.profile import distribution_profile

SCRAPE_INTERVAL_S = 15.0
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def filled_state(features: int, versions: int, rows: int, rng: np.random.Generator) -> MonitoringState:
    state = MonitoringState(
        drift=DriftSpec(rows, cycle_s=0),  # the last ``rows`` predictions: full windows of that size
        quality_window=rows,
        pending_capacity=rows * versions * 2,
        label_history=rows * versions,
        max_versions=versions,
        # Transactions a minute apart, labels 10 minutes later: all but the last hour's mature into the windows.
        label_horizon_s=3600.0,
        amount_feature="amount",
    )
    names = [f"feature_{index:02d}" for index in range(features)]
    for version in range(1, versions + 1):
        values = rng.normal(0.2 * version, 1, (rows, features))
        for row in range(rows):
            transaction = uuid.uuid4()
            fraud = bool(rng.random() < 0.05)
            score = float(np.clip(rng.beta(1, 8) + (0.5 if fraud else 0.0), 0, 1))
            happened = T0 + timedelta(minutes=(version - 1) * rows + row)
            state.add_prediction(
                PredictionV3(
                    event_id=uuid.uuid4(),
                    scored_event_id=transaction,
                    scored_event_time=happened,
                    served_at=happened,
                    entities={"user_id": "u-1", "merchant_id": "m-1"},
                    model_name="fraud",
                    model_version=f"v{version:04d}",
                    features={**dict(zip(names, values[row].tolist(), strict=True)), "amount": 20.0},
                    score=score,
                    threshold=0.5,
                    decision="review" if score >= 0.5 else "approve",
                )
            )
            state.add_label(Verdict(transaction, fraud, happened + timedelta(minutes=10)))
    return state


def references(features: int, versions: int, rng: np.random.Generator) -> dict[str, Reference]:
    profile = {
        "features": {
            **{f"feature_{index:02d}": distribution_profile(rng.normal(0, 1, 20_000)) for index in range(features)},
            "amount": distribution_profile(rng.lognormal(3, 1, 20_000)),
        },
        "prediction": distribution_profile(rng.beta(1, 8, 20_000)),
    }
    reference = Reference(ReferenceProfile.from_profile(profile), pr_auc=0.8)
    return {f"v{version:04d}": reference for version in range(1, versions + 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--versions", type=int, default=4)
    parser.add_argument("--rows", type=int, default=2_000, help="Rows per window.")
    parser.add_argument("--runs", type=int, default=51)
    args = parser.parse_args()
    console = Console()
    rng = np.random.default_rng(7)
    with console.status(f"Filling {args.versions} versions x {args.rows} rows x {args.features} features"):
        state = filled_state(args.features, args.versions, args.rows, rng)
        refs = references(args.features, args.versions, rng)
    card = problem_card()
    settings = SnapshotSettings(min_drift_rows=200, min_labels=200, min_positives=5)
    started = time.perf_counter()
    snapshot = compute_snapshot(state, refs, card.costs, settings, T0.timestamp())
    snapshot_s = time.perf_counter() - started

    exporter = CollectorRegistry()
    MonitoringMetrics.register(exporter)
    collector = SnapshotCollector("fraud", new_rows_threshold=50_000, currency=card.costs.currency)
    exporter.register(collector)
    collector.publish(snapshot)
    samples = sum(len(family.samples) for family in exporter.collect())

    bare = CollectorRegistry()
    gauge = Gauge("bench_bare", "Baseline: plain gauges.", ["model", "version", "feature"], registry=bare)
    for index in range(samples):
        gauge.labels("fraud", f"v{index % args.versions:04d}", f"f{index}").set(float(index))

    ours: list[float] = []
    baseline: list[float] = []
    for _ in range(args.runs):
        for registry, times in ((exporter, ours), (bare, baseline)):
            begin = time.perf_counter()
            generate_latest(registry)
            times.append(time.perf_counter() - begin)
    scrape, base = statistics.median(ours), statistics.median(baseline)

    table = Table(title=f"/metrics with {args.features} features x {args.versions} versions ({samples} samples)")
    table.add_column("what")
    table.add_column("median ms", justify="right")
    table.add_row("scrape: exporter registry", f"{scrape * 1000:.2f}")
    table.add_row("baseline: plain gauges, same sample count", f"{base * 1000:.2f}")
    table.add_row("one snapshot recomputation (off the scrape path)", f"{snapshot_s * 1000:.1f}")
    console.print(table)
    console.print(f"ratio scrape/baseline: {scrape / base:.2f}x")
    share = scrape / SCRAPE_INTERVAL_S
    console.print(
        f"scrape takes {share:.4%} of the {SCRAPE_INTERVAL_S:.0f} s scrape interval: "
        + ("[green]well under (goal met)[/]" if share < 0.01 else "[red]not well under[/]")
    )
    console.print(f"machine: {platform.machine()}, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
