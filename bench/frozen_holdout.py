"""The time-shifted holdout's gap on clean and leaky models, and what the frozen rebuild adds to the dataset step.

Fills a fresh embedded feature store with D days of simulated fraud traffic per world seed
(``tests.feature_world``, as the pipeline's tests do: 60 days, a 30-day window), then:

- times ``build_dataset`` and, inside it, the frozen rebuild of the test rows
  (:func:`berg_pipelines.runtime.dataset.frozen_test_frame`): median of ``--repeats``;
- trains the challenger and evaluates it (``evaluate_step``) on the clean dataset: the honest gap;
- on the first seed, plants each leak of ``pipelines/tests/test_training_steps.py`` (a label written back
  into a user view, served by ``fraud_model_leaky``; and the four producer bugs planted by wrapping
  ``build_training_frame``), builds the dataset with the leakage and recompute checks bypassed (they would
  fail it), trains and evaluates: the gap each leak produces.

Prints one line per run: PR-AUC on test and on the frozen copy, the gap, expected costs, flagged.

    uv run python bench/frozen_holdout.py
    uv run python bench/frozen_holdout.py --seeds 3 4 5 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.feature_world, pipelines.tests

from pipelines.tests import test_training_steps as planted

from berg.features.recompute import RecomputeResult
from berg_pipelines.runtime import dataset as dataset_runtime
from berg_pipelines.steps import PipelineSettings, baseline_step, build_dataset_step, evaluate_step, train_step
from tests.feature_world import FeatureWorld, simulated_feature_store
from tests.fraud_schema import FEATURE_SERVICE

WINDOW_DAYS = 30.0


@contextmanager
def patched(module: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


@contextmanager
def checks_bypassed() -> Iterator[None]:
    """The leakage and recompute checks as no-ops: a leaky frame is written, for measuring only."""

    def no_recompute(frame: Any, *_args: Any, **_kwargs: Any) -> RecomputeResult:
        return RecomputeResult(rows=len(frame), rows_sampled=0, seed=0, compared={})

    with (
        patched(dataset_runtime, "check_leakage", lambda *_args, **_kwargs: None),
        patched(dataset_runtime, "check_recompute", no_recompute),
    ):
        yield


def run(settings: PipelineSettings, out: Path, service: str) -> dict[str, Any]:
    dataset = out / "dataset"
    build_dataset_step(settings, dataset, window_days=WINDOW_DAYS, feature_service=service)
    train_step(dataset, out / "model", "{}")
    baseline_step(settings, dataset, out / "baseline")
    report = evaluate_step(
        settings, dataset, out / "model", out / "baseline", "", "m", out / "evaluation", out / "report.html"
    )
    assert report.frozen_holdout is not None
    return report.frozen_holdout


def line(console: Console, label: str, holdout: dict[str, Any]) -> None:
    test, frozen = holdout["test"], holdout["frozen"]
    console.print(
        f"{label:<34} pr_auc test {test['pr_auc']:.4f} frozen {frozen['pr_auc']:.4f} gap {holdout['pr_auc_gap']:+.4f}"
        f"  cost test {test['expected_cost']:,.0f} frozen {frozen['expected_cost']:,.0f}"
        f"  flagged {holdout['flagged']}"
    )


def timing(console: Console, settings: PipelineSettings, root: Path, repeats: int) -> None:
    rebuild: list[float] = []
    original = dataset_runtime.frozen_test_frame

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            rebuild.append(time.perf_counter() - started)

    totals = []
    with patched(dataset_runtime, "frozen_test_frame", timed):
        for repeat in range(repeats):
            started = time.perf_counter()
            build_dataset_step(
                settings, root / f"timing{repeat}", window_days=WINDOW_DAYS, feature_service=FEATURE_SERVICE
            )
            totals.append(time.perf_counter() - started)
    total, added = statistics.median(totals), statistics.median(rebuild)
    console.print(
        f"dataset step: {total:.2f} s median of {repeats}, of which the frozen rebuild {added:.2f} s "
        f"({added / (total - added):.1%} over the step without it)"
    )


Leak = Callable[..., Any]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    console = Console()

    leaks: dict[str, Leak] = {
        "joined-at-prediction-time": planted._joined_at_the_prediction_time,
        "window-reaching-forward": planted._count_window_reaching_forward,
        "next-row-value": planted._mean_from_the_next_row,
        "on-demand-reads-label": planted._on_demand_reading_the_label,
    }
    for index, seed in enumerate(args.seeds):
        with tempfile.TemporaryDirectory() as state:
            root = Path(state)
            world: FeatureWorld = simulated_feature_store(root / "world", days=args.days, seed=seed)
            settings = PipelineSettings(offline_root=world.offline_root, use_case="fraud", store=world.store_config)
            if index == 0 and args.repeats:
                timing(console, settings, root, args.repeats)
            line(console, f"seed {seed} clean", run(settings, root / "clean", FEATURE_SERVICE))
            if index:
                continue
            build = dataset_runtime.build_training_frame
            for name, leak in leaks.items():

                def leaky(
                    *a: Any, _leak: Leak = leak, _build: Leak = build, _world: FeatureWorld = world, **k: Any
                ) -> Any:
                    return _leak(_build, a, k, _world)

                with checks_bypassed(), patched(dataset_runtime, "build_training_frame", leaky):
                    line(console, f"seed {seed} {name}", run(settings, root / name, FEATURE_SERVICE))
            planted._plant_label_leak(world)
            with checks_bypassed():
                line(console, f"seed {seed} label-in-a-view", run(settings, root / "label", planted.LEAKY_SERVICE))


if __name__ == "__main__":
    main()
