"""How much clean retrains move each feature's share of total gain: the numbers behind the jump rule.

Fills a fresh embedded feature store with D days of simulated fraud traffic through the features
service's handler (``tests.feature_world``, as the pipeline's tests do), builds 30-day datasets
ending 0, 3, 7, 10, 14 and 21 days before the label-complete end, trains each as the training step
does (and the latest window once more with another seed), and compares every earlier window's model
(the champion) with every later one's (the challenger), as ``berg.features.suspicion.importance_jumps``
does: shares of ``get_score(importance_type="total_gain")``.

Prints, per pair, the largest rise of a share, the largest ratio among rises of at least
``--min-rise``, the largest rise among ratios of at least 2, and what the default rule lists.
Also prints each feature's single-feature ROC-AUC on the latest training split.

    uv run python bench/importance_jumps.py            # 90 days: the numbers in suspicion.py
    uv run python bench/importance_jumps.py --days 60  # the pipeline tests' world (one window only)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.feature_world

from berg.features.suspicion import DEFAULT_MIN_RATIO, DEFAULT_MIN_RISE, importance_jumps, single_feature_auc
from berg_pipelines.runtime.dataset import DatasetError
from berg_pipelines.runtime.frames import DatasetInfo, read_frame
from berg_pipelines.runtime.model_io import load_booster
from berg_pipelines.runtime.review import total_gain
from berg_pipelines.steps import MODEL_FILE, PipelineSettings, build_dataset_step, train_step
from tests.feature_world import simulated_feature_store
from tests.fraud_schema import FEATURE_SERVICE

SHIFTS = (0, 3, 7, 10, 14, 21)


def shares(gain: dict[str, float]) -> dict[str, float]:
    total = sum(gain.values())
    return {name: value / total for name, value in gain.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=90, help="days of simulated traffic")
    parser.add_argument("--window-days", type=float, default=30.0)
    parser.add_argument("--min-rise", type=float, default=0.10)
    args = parser.parse_args()
    os.environ.setdefault("BERG_USE_CASE", "fraud")

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        world = simulated_feature_store(root / "world", days=args.days)
        settings = PipelineSettings(offline_root=world.offline_root, store=world.store_config)
        latest = build_dataset_step(
            settings, root / "ds_0", window_days=args.window_days, feature_service=FEATURE_SERVICE
        )
        end = datetime.fromisoformat(latest.window_end)
        gains: dict[str, dict[str, float]] = {}
        for shift in SHIFTS:
            dataset = root / f"ds_{shift}"
            try:
                if shift:
                    build_dataset_step(
                        settings,
                        dataset,
                        window_days=args.window_days,
                        feature_service=FEATURE_SERVICE,
                        window_end=(end - timedelta(days=shift)).isoformat(),
                    )
            except DatasetError as error:  # a window too early for the world: too few positives
                print(f"window ending {shift} days earlier skipped: {error}")
                continue
            train_step(dataset, root / f"m_{shift}", "{}")
            gains[f"-{shift}d"] = total_gain(load_booster(root / f"m_{shift}" / MODEL_FILE))
        train_step(root / "ds_0", root / "m_seed", '{"seed": 99}')
        gains["-0d seed 99"] = total_gain(load_booster(root / "m_seed" / MODEL_FILE))

        info = DatasetInfo.read(root / "ds_0")
        train = read_frame(root / "ds_0" / "train.parquet")
        labels = train[info.label_column].to_numpy()
        print(f"single-feature ROC-AUC on the latest training split ({len(train)} rows):")
        for column in info.feature_columns:
            print(f"  {column:36s} {single_feature_auc(train[column], labels):.4f}")

        order = [f"-{shift}d" for shift in sorted(SHIFTS, reverse=True) if f"-{shift}d" in gains]
        pairs = [(old, new) for i, old in enumerate(order) for new in order[i + 1 :]]
        pairs += [("-0d", "-0d seed 99"), ("-0d seed 99", "-0d")]
        print(
            f"\n{'champion -> challenger':26s} max rise  max ratio (rise>={args.min_rise})  max rise (ratio>=2)  listed"
        )
        for old, new in pairs:
            before, after = shares(gains[old]), shares(gains[new])
            rows = [
                (
                    after.get(f, 0.0) - before.get(f, 0.0),
                    after.get(f, 0.0) / before[f] if before.get(f) else float("inf"),
                )
                for f in set(before) | set(after)
            ]
            listed = importance_jumps(gains[new], gains[old], min_rise=DEFAULT_MIN_RISE, min_ratio=DEFAULT_MIN_RATIO)
            print(
                f"{old + ' -> ' + new:26s} {max(rise for rise, _ in rows):8.4f}  "
                f"{max((ratio for rise, ratio in rows if rise >= args.min_rise), default=0.0):25.2f}  "
                f"{max((rise for rise, ratio in rows if ratio >= 2), default=0.0):19.4f}  "
                f"{[(s.feature, round(s.value, 3)) for s in listed]}"
            )


if __name__ == "__main__":
    main()
