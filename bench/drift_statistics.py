"""Drift statistics per window: the monitoring exporter's PSI + KS for all features against numpy + scipy, in one run.

Builds a reference profile with the pipeline's own ``distribution_profile`` (quantile
edges, shares, missing share, a sorted sample of 1000) for F features of a training
set (continuous, heavy-tailed, integer counts with ties, some values missing), draws a
drifted live window of N rows, and times, interleaved, on the same window:

- ours: ``berg_monitoring.statistics.feature_drift`` on the (N, F) matrix, with the
  ``ReferenceProfile`` built once beforehand (the exporter builds it once per model
  version; its build time is printed apart);
- baseline: per feature, the finite values, ``np.histogram`` on the profile's edges
  (outer bins open to +-inf) plus the missing count, PSI over those counts, and
  ``scipy.stats.ks_2samp(sample, values, method="asymp").statistic``; the profile's
  edges and sample already numpy arrays. ``asymp`` is scipy's cheapest path to the
  statistic (the default computes the exact p-value up to 10,000 rows, far slower).

Checks that both give the same PSI and KS for every feature, then prints the median
and minimum seconds of each per window size and the ratio ours/baseline of the
medians (lower is better; goal <= 2).

    uv run python bench/drift_statistics.py
    uv run python bench/drift_statistics.py --rows 10000 50000 200000 --features 50 --runs 9
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import scipy
from rich.console import Console
from rich.table import Table
from scipy.stats import ks_2samp

from berg_monitoring.statistics import PSI_EMPTY_BIN_SHARE, ReferenceProfile, feature_drift
from berg_pipelines.runtime.profile import distribution_profile

GOAL = 2.0
TRAINING_ROWS = 100_000


def feature_values(rng: np.random.Generator, kind: int, rows: int, drift: float) -> np.ndarray:
    """One feature's values; ``kind`` picks the shape, ``drift`` shifts it (0: as in training)."""
    if kind == 0:
        values = rng.gamma(2.0, 40.0 * (1.0 + drift), rows)
    elif kind == 1:
        values = rng.normal(drift, 1.0, rows)
    elif kind == 2:
        values = rng.poisson(3.0 + 2.0 * drift, rows).astype(np.float64)  # counts: many ties
    else:
        values = rng.lognormal(drift, 1.5, rows)
    values[rng.random(rows) < 0.01 + 0.05 * drift] = np.nan
    return values


def baseline_drift(
    matrix: np.ndarray, edges: list[np.ndarray], shares: list[np.ndarray], samples: list[np.ndarray]
) -> list[tuple[float, float]]:
    """PSI (np.histogram) and KS (scipy) of every column, the straightforward way."""
    results = []
    for index in range(matrix.shape[1]):
        column = matrix[:, index]
        finite = column[np.isfinite(column)]
        counts, _ = np.histogram(finite, bins=np.concatenate(([-np.inf], edges[index], [np.inf])))
        actual = np.maximum(np.append(counts, len(column) - len(finite)) / len(column), PSI_EMPTY_BIN_SHARE)
        expected = np.maximum(shares[index], PSI_EMPTY_BIN_SHARE)
        psi = float(np.sum((actual - expected) * np.log(actual / expected)))
        ks = float(ks_2samp(samples[index], finite, method="asymp").statistic)
        results.append((psi, ks))
    return results


def interleaved(runs: int, paths: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
    """Seconds of ``runs`` calls of each path, alternating paths so machine noise hits both alike."""
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(runs):
        for name, work in paths.items():
            began = time.perf_counter()
            work()
            seconds[name].append(time.perf_counter() - began)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 50_000], help="rows per drift window")
    parser.add_argument("--features", type=int, nargs="+", default=[20, 50], help="features per window")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each path (median reported)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    console = Console(highlight=False)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}")
    print(
        f"reference: distribution_profile of {TRAINING_ROWS:,} training rows per feature; "
        f"windows of {', '.join(f'{r:,}' for r in args.rows)} rows x {', '.join(map(str, args.features))} "
        f"features; median of {args.runs} interleaved runs"
    )
    rng = np.random.default_rng(args.seed)
    table = Table(title="PSI + KS of every feature over one window (seconds)")
    for column in ("rows", "features", "ours median", "ours min", "baseline median", "baseline min", "ratio", "goal"):
        table.add_column(column, justify="right")
    met_everywhere = True
    for feature_count in args.features:
        names = [f"feature_{index:02d}" for index in range(feature_count)]
        with console.status(f"profiling {feature_count} features"):
            profiles = {
                name: distribution_profile(feature_values(rng, index % 4, TRAINING_ROWS, 0.0))
                for index, name in enumerate(names)
            }
            profile = {"features": profiles, "prediction": distribution_profile(rng.beta(1, 30, TRAINING_ROWS))}
            began = time.perf_counter()
            reference = ReferenceProfile.from_profile(profile)
            build_s = time.perf_counter() - began
            edges = [np.asarray(profiles[name]["edges"]) for name in names]
            shares = [np.append(profiles[name]["shares"], profiles[name]["missing_share"]) for name in names]
            samples = [np.asarray(profiles[name]["sample"]) for name in names]
        print(f"{feature_count} features: ReferenceProfile built once in {build_s * 1000:.1f} ms")
        for rows in args.rows:
            matrix = np.column_stack(
                [feature_values(rng, index % 4, rows, 0.3 * (index % 3)) for index in range(feature_count)]
            )
            ours = feature_drift(reference, matrix, names)
            theirs = baseline_drift(matrix, edges, shares, samples)
            for name, (psi, ks) in zip(names, theirs, strict=True):
                if not (np.isclose(ours[name].psi, psi, rtol=1e-9, atol=1e-12) and abs(ours[name].ks - ks) < 1e-12):
                    raise SystemExit(f"{name}: ours psi {ours[name].psi} ks {ours[name].ks}, baseline {psi} {ks}")
            with console.status(f"timing {rows:,} rows x {feature_count} features"):
                seconds = interleaved(
                    args.runs,
                    {
                        "ours": partial(feature_drift, reference, matrix, names),
                        "baseline": partial(baseline_drift, matrix, edges, shares, samples),
                    },
                )
            ours_s, baseline_s = statistics.median(seconds["ours"]), statistics.median(seconds["baseline"])
            ratio = ours_s / baseline_s
            met = ratio <= GOAL
            met_everywhere = met_everywhere and met
            table.add_row(
                f"{rows:,}",
                str(feature_count),
                f"{ours_s:.4f}",
                f"{min(seconds['ours']):.4f}",
                f"{baseline_s:.4f}",
                f"{min(seconds['baseline']):.4f}",
                f"{ratio:.2f}",
                "[green]met[/green]" if met else "[red]NOT met[/red]",
            )
    print("agreement: ours == baseline on every feature's PSI (rel 1e-9) and KS (abs 1e-12)")
    console.print(table)
    print(f"ratio ours/baseline (medians, lower is better), goal <= {GOAL}: {'met' if met_everywhere else 'NOT met'}")


if __name__ == "__main__":
    main()
