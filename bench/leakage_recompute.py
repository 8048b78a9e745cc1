"""The recompute check's cost against the dataset build it guards.

Fills a fresh embedded feature store with D days of simulated fraud traffic through the features
service's handler (``tests.feature_world``, as the pipeline's tests do), then times, on the same
store and window:

- build: ``build_dataset`` with the recompute check off (sample 0): the baseline, what the step
  cost before the check;
- build+check: ``build_dataset`` with the default sample (90 rows);
- check alone: ``check_recompute`` on the training frame for 90 and for ``--large`` rows, from
  which the cost per sampled row.

Prints the medians and the ratio build+check / build (the issue's bound: at most 2), and whether the
splits written with and without the check are identical (it only reads).

    uv run python bench/leakage_recompute.py
    uv run python bench/leakage_recompute.py --days 60 --window-days 30 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.feature_world

from berg.features.dataset import build_training_frame, describe_features
from berg.features.feature_set import EVENT_TIMESTAMP, REQUEST_EVENT_UNIX
from berg.features.recompute import DEFAULT_SAMPLE_SIZE
from berg.features.recompute_check import check_recompute
from berg.features.store import close_store, open_store
from berg_fraud.use_case import fraud
from berg_pipelines.runtime.dataset import build_dataset, label_complete_window
from berg_pipelines.runtime.frames import read_frame
from tests.feature_world import simulated_feature_store


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=45, help="days of simulated traffic")
    parser.add_argument("--window-days", type=float, default=14.0, help="the dataset's window")
    parser.add_argument("--large", type=int, default=900, help="a larger sample, for the cost per row")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    console = Console()

    use_case = fraud()
    card = use_case.card
    with tempfile.TemporaryDirectory() as state:
        console.print(f"simulating {args.days} days ...")
        world = simulated_feature_store(Path(state), days=args.days)
        labels = world.label_store
        window = label_complete_window(labels, card, args.window_days)
        store = open_store(world.store_config)
        try:

            def build(sample: int) -> Callable[[], object]:
                return lambda: build_dataset(
                    store,
                    labels,
                    card,
                    use_case,
                    window,
                    Path(state) / f"dataset-{sample}",
                    feature_service=use_case.features.service,
                    recompute_sample=sample,
                )

            # The frame the check reads, built as build_dataset builds it.
            entities = labels.labelled_events(
                window.start, window.end, timedelta(days=card.target.label_horizon_days), use_case.label_join
            ).rename(columns={"event_time": EVENT_TIMESTAMP})
            entities[REQUEST_EVENT_UNIX] = entities[EVENT_TIMESTAMP].map(lambda t: t.timestamp())
            entities[card.target.column] = entities[use_case.label_join.target].astype("int64")
            frame = build_training_frame(store, entities, use_case.features.service, with_as_of=True)
            layout = describe_features(store, use_case.features.service)

            def check(sample: int) -> Callable[[], object]:
                return lambda: check_recompute(
                    frame, labels, use_case.features, layout.features, use_case.label_join, sample_size=sample
                )

            build(0)()  # warm: Feast's registry and the parquet reads' caches
            baseline = median_seconds(build(0), args.repeats)
            guarded = median_seconds(build(DEFAULT_SAMPLE_SIZE), args.repeats)
            default = median_seconds(check(DEFAULT_SAMPLE_SIZE), args.repeats)
            large = median_seconds(check(args.large), args.repeats)
            # The check only reads: the splits written with and without it are the same rows and values.
            identical = all(
                read_frame(Path(state) / "dataset-0" / f"{name}.parquet").equals(
                    read_frame(Path(state) / f"dataset-{DEFAULT_SAMPLE_SIZE}" / f"{name}.parquet")
                )
                for name in ("train", "validation", "test")
            )
        finally:
            close_store(store)

    per_row = (large - default) / (args.large - DEFAULT_SAMPLE_SIZE)
    console.print(f"{len(frame)} training rows, {world.transactions} transactions simulated, {args.repeats} repeats")
    console.print(f"build (check off)        {baseline:8.3f} s")
    console.print(f"build + check ({DEFAULT_SAMPLE_SIZE} rows)  {guarded:8.3f} s")
    console.print(f"check alone, {DEFAULT_SAMPLE_SIZE} rows     {default * 1e3:8.1f} ms")
    console.print(f"check alone, {args.large} rows    {large * 1e3:8.1f} ms")
    console.print(f"per sampled row          {per_row * 1e3:8.2f} ms (marginal, from the two samples)")
    console.print(f"ratio build+check / build: {guarded / baseline:.2f} (goal <= 2)")
    console.print(f"splits identical with and without the check: {identical}")


if __name__ == "__main__":
    main()
