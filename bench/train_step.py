"""Training step overhead: the pipeline's train step against a bare ``xgb.train``, in one run.

Fills a fresh Feast store with simulated history (``tests/feature_world.py``, the
features service's own handler), builds the training set with the pipeline's
``build_dataset_step``, then times, interleaved, on that dataset directory:

- step: ``berg_pipelines.steps.train_step`` in this process, as the pipeline's
  train component runs it: read the three parquet splits, build the float32
  matrices and DMatrices, train, keep the best iteration, save ``model.bst`` and
  ``train.json``;
- bare: ``xgb.DMatrix`` + ``xgb.train`` on the same arrays already in memory, with
  the same booster params (the step's own ``TrainParams.booster_params``, with its
  ``scale_pos_weight``), the same number of rounds and the same validation set
  evaluated each round.

Early stopping is disabled in both (patience = number of rounds), so both build
exactly ``--rounds`` trees; both use all cores (``nthread=0``, the step's
default). Prints the median and the minimum of each, the ratio step/bare of the
medians (goal <= 1.3) and the speed-up of the bare train with ``nthread=2`` over
``nthread=1``. Multi-threaded XGBoost slows down by an order of magnitude when
another process holds a core (OpenMP threads wait on each other every round), so
run it on an otherwise idle machine; the minima show what a quiet run costs.

    uv run python bench/train_step.py
    uv run python bench/train_step.py --days 90 --window-days 60 --users 600 --rounds 300 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import xgboost as xgb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.feature_world

from berg_pipelines.runtime.frames import DatasetInfo, feature_matrix, read_frame
from berg_pipelines.runtime.train import TrainParams, class_weight
from berg_pipelines.steps import PipelineSettings, build_dataset_step, train_step
from tests.feature_world import simulated_feature_store


def bare_train(arrays: dict[str, Any], params: dict[str, Any], rounds: int, nthread: int) -> xgb.Booster:
    """What training costs without the pipeline around it: DMatrix from arrays in memory, xgb.train."""
    names = arrays["features"]
    dtrain = xgb.DMatrix(arrays["x_train"], label=arrays["y_train"], feature_names=names)
    dvalid = xgb.DMatrix(arrays["x_valid"], label=arrays["y_valid"], feature_names=names)
    return xgb.train(
        {**params, "nthread": nthread},
        dtrain,
        num_boost_round=rounds,
        evals=[(dvalid, "validation")],
        verbose_eval=False,
    )


def timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--days", type=int, default=60, help="days of simulated traffic (label horizon: 30)")
    parser.add_argument("--window-days", type=float, default=30.0, help="label-complete days in the training set")
    parser.add_argument("--users", type=int, default=300, help="simulated card holders")
    parser.add_argument("--rounds", type=int, default=300, help="boosting rounds (early stopping disabled)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each path (median reported)")
    args = parser.parse_args()
    # It measures the fraud case's traffic; the workspace installs two use cases, so it names that one
    # unless the run names it (what `make` does).
    os.environ.setdefault("BERG_USE_CASE", "fraud")
    console = Console(highlight=False)
    # Feast warns about on-demand views on apply, and Dask about pandas downcasting; neither matters here.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="feast")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"python {platform.python_version()}, xgboost {xgb.__version__}, pandas {pd.__version__}")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="berg-train-bench-") as tmp:
        work = Path(tmp)
        world_dir, dataset = work / "world", work / "dataset"
        columns = [
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"simulating {args.days} days of traffic into a Feast store", total=None)
            world = simulated_feature_store(world_dir, days=args.days, users=args.users)
            progress.update(task, total=1, completed=1)
            task = progress.add_task("build_dataset_step", total=None)
            build_dataset_step(
                PipelineSettings(world.offline_root, store=world.store_config),
                dataset,
                window_days=args.window_days,
                feature_service="fraud_model_v1",
            )
            progress.update(task, total=1, completed=1)

            info = DatasetInfo.read(dataset)
            train, validation = read_frame(dataset / "train.parquet"), read_frame(dataset / "validation.parquet")
            features = list(info.feature_columns)
            arrays = {
                "features": features,
                "x_train": feature_matrix(train, features),
                "y_train": train[info.label_column].to_numpy(),
                "x_valid": feature_matrix(validation, features),
                "y_valid": validation[info.label_column].to_numpy(),
            }
            step_params = TrainParams(num_boost_round=args.rounds, early_stopping_rounds=args.rounds)
            booster_params = step_params.booster_params(class_weight(arrays["y_train"]))
            params_json = json.dumps({"num_boost_round": args.rounds, "early_stopping_rounds": args.rounds})

            def step() -> None:
                shutil.rmtree(work / "model", ignore_errors=True)
                train_step(dataset, work / "model", params_json)

            paths: dict[str, Callable[[], object]] = {
                "step": step,
                "bare": lambda: bare_train(arrays, booster_params, args.rounds, 0),
                "bare nthread=1": lambda: bare_train(arrays, booster_params, args.rounds, 1),
                "bare nthread=2": lambda: bare_train(arrays, booster_params, args.rounds, 2),
            }
            task = progress.add_task("warm-up (imports, first DMatrix)", total=2)
            train_step(dataset, work / "warm", json.dumps({"num_boost_round": 5, "early_stopping_rounds": 5}))
            progress.advance(task)
            bare_train(arrays, booster_params, 5, 0)
            progress.advance(task)

            seconds: dict[str, list[float]] = {name: [] for name in paths}
            task = progress.add_task(f"timed runs ({args.rounds} rounds each)", total=args.runs * len(paths))
            for _ in range(args.runs):
                for name, call in paths.items():  # interleaved: load on the machine hits every path alike
                    seconds[name].append(timed(call))
                    progress.advance(task)

        saved = json.loads((work / "model" / "train.json").read_text())["params"]
        assert saved == booster_params, "the step trained with other params than the bare path"
        print(
            f"dataset: {info.rows['train']:,} train rows ({info.positives['train']} fraud), "
            f"{info.rows['validation']:,} validation, {info.rows['test']:,} test, {len(features)} features; "
            f"{args.rounds} rounds, early stopping off, median of {args.runs} runs"
        )
        median = {name: statistics.median(values) for name, values in seconds.items()}
        best = {name: min(values) for name, values in seconds.items()}
        for name, value in median.items():
            runs = ", ".join(f"{v:.2f}" for v in seconds[name])
            print(f"{name + ':':<16}median {value:7.3f} s   min {best[name]:7.3f} s   (runs: {runs})")
        ratio = median["step"] / median["bare"]
        print(
            f"ratio step/bare: {ratio:.2f} (medians; {best['step'] / best['bare']:.2f} on minima)   "
            f"goal <= 1.3: {'met' if ratio <= 1.3 else 'NOT met'}"
        )
        speedup = median["bare nthread=1"] / median["bare nthread=2"]
        print(
            f"bare speed-up nthread=2 over nthread=1: {speedup:.2f}x "
            f"(medians; {best['bare nthread=1'] / best['bare nthread=2']:.2f}x on minima)"
        )
    print(f"whole benchmark: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
