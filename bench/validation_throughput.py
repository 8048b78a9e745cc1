"""Validation throughput: the Great Expectations path against the same rules in vectorised pandas, in one run.

Generates N plausible card transactions (a few % breaking a value rule:
negative or too large amounts, unknown merchant categories or currencies, event
times in the future, duplicated event ids), cuts them into micro-batches of
several sizes, and times, batch by batch and interleaved:

- GX: ``berg_validation.suites.Suites.validate`` (in-memory context, suites built once);
- pandas: ``berg_validation.pandas_rules.PandasRules.validate``, the same rules.

Frames are built before timing (their cost is printed apart). Prints rows/s of
each path per batch size, ms per batch, the ratio GX/pandas (goal <= 10), the
fixed cost of one GX validation (a 1-row batch, and a 100-row batch, the
smallest that runs the batch-level suites too), and checks that both paths gave
the same verdicts. Each batch size gets a time budget, so the run stays
under ~2 minutes.

    uv run python bench/validation_throughput.py
    uv run python bench/validation_throughput.py --rows 80000 --batch-sizes 5000,10000,20000,40000
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import great_expectations as gx
import pandas as pd

from berg_fraud.contracts import MAX_AMOUNT, TransactionV1
from berg_fraud.reference import MERCHANT_CATEGORY_CODES as DEFAULT_MERCHANT_CATEGORIES
from berg_fraud.rules import DEFAULT_CURRENCIES, FraudRules
from berg_fraud.use_case import fraud
from berg_validation.frames import build_frame
from berg_validation.pandas_rules import PandasRules
from berg_validation.suites import build_suites, create_context
from berg_validation.verdict import Verdict

CATEGORIES = sorted(DEFAULT_MERCHANT_CATEGORIES)
COUNTRIES = ("DE", "FR", "NL", "BE", "AT", "ES", "IT", "PL")


def make_transactions(count: int, bad_share: float, now: datetime, rng: random.Random) -> list[TransactionV1]:
    """``count`` transactions over the last hour; ``bad_share`` of them break one value rule."""
    events: list[TransactionV1] = []
    for _ in range(count):
        amount = round(rng.lognormvariate(3.0, 1.0), 2)
        fields: dict[str, object] = {
            "event_id": uuid.UUID(int=rng.getrandbits(128), version=4),
            "event_time": now - timedelta(seconds=rng.uniform(0, 3600)),
            "user_id": f"user-{rng.randrange(5000):05d}",
            "merchant_id": f"merchant-{rng.randrange(800):04d}",
            "amount": amount,
            "currency": "EUR",
            "merchant_category": rng.choice(CATEGORIES),
            "channel": "card_not_present" if rng.random() < 0.35 else "card_present",
            "country": rng.choice(COUNTRIES),
        }
        if rng.random() < bad_share:
            fault = rng.randrange(6)
            if fault == 0:
                fields["amount"] = -amount
            elif fault == 1:
                fields["amount"] = MAX_AMOUNT * 2
            elif fault == 2:
                fields["merchant_category"] = "0000"
            elif fault == 3:
                fields["currency"] = "XXX"
            elif fault == 4:
                fields["event_time"] = now + timedelta(days=1)
            elif events:
                fields["event_id"] = events[rng.randrange(len(events))].event_id
        events.append(TransactionV1.model_validate(fields))
    return events


def median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def same(left: Verdict, right: Verdict) -> bool:
    return (
        left.row_failures == right.row_failures
        and left.batch_failures == right.batch_failures
        and dict(left.failure_counts) == dict(right.failure_counts)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--batch-sizes", default="100,500,2000,10000,20000")
    parser.add_argument("--bad-share", type=float, default=0.03)
    parser.add_argument("--budget-s", type=float, default=15.0, help="time budget per batch size (GX + pandas)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(size) for size in args.batch_sizes.split(",")]

    now = datetime.now(UTC)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    events = make_transactions(args.rows, args.bad_share, now, rng)
    generated_s = time.perf_counter() - started

    settings = FraudRules(currencies=DEFAULT_CURRENCIES)
    streams = fraud().streams
    started = time.perf_counter()
    suites = build_suites(create_context(), streams, settings)
    setup_s = time.perf_counter() - started
    pandas_rules = PandasRules(streams, settings)

    def transactions_frame(events: list[TransactionV1]) -> pd.DataFrame:
        return build_frame(streams[0], events)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"python {platform.python_version()}, great_expectations {gx.__version__}, pandas {pd.__version__}")
    print(
        f"{args.rows} transactions ({args.bad_share:.0%} bad) generated in {generated_s:.1f}s; suites built in "
        f"{setup_s * 1000:.0f} ms (once per process)\n"
    )

    one = transactions_frame(events[:1])
    hundred = transactions_frame(events[:100])
    gx_one = median_ms(lambda: suites.validate(one, "transactions", now), 15)
    pd_one = median_ms(lambda: pandas_rules.validate(one, "transactions", now), 15)
    gx_hundred = median_ms(lambda: suites.validate(hundred, "transactions", now), 9)
    pd_hundred = median_ms(lambda: pandas_rules.validate(hundred, "transactions", now), 9)
    print(f"fixed cost, 1-row batch (row-level suite only): GX {gx_one:.1f} ms, pandas {pd_one:.2f} ms")
    print(f"fixed cost, 100-row batch (all three suites):    GX {gx_hundred:.1f} ms, pandas {pd_hundred:.2f} ms\n")

    header = (
        f"{'batch':>6} {'batches':>7} {'frame ms':>8} {'GX ms':>8} {'pandas ms':>9} "
        f"{'GX rows/s':>10} {'pandas rows/s':>13} {'GX/pandas':>9}  agree"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        gx_s = pandas_s = frame_s = 0.0
        batches = rows = disagreements = 0
        budget_end = time.perf_counter() + args.budget_s
        for start in range(0, args.rows - size + 1, size):
            begin = time.perf_counter()
            frame = transactions_frame(events[start : start + size])
            middle = time.perf_counter()
            gx_verdict = suites.validate(frame, "transactions", now)
            after_gx = time.perf_counter()
            pandas_verdict = pandas_rules.validate(frame, "transactions", now)
            end = time.perf_counter()
            frame_s += middle - begin
            gx_s += after_gx - middle
            pandas_s += end - after_gx
            batches += 1
            rows += size
            disagreements += not same(gx_verdict, pandas_verdict)
            if end > budget_end:
                break
        print(
            f"{size:>6} {batches:>7} {frame_s / batches * 1000:>8.1f} {gx_s / batches * 1000:>8.1f} "
            f"{pandas_s / batches * 1000:>9.2f} {rows / gx_s:>10,.0f} {rows / pandas_s:>13,.0f} "
            f"{gx_s / pandas_s:>9.1f}  {'yes' if not disagreements else f'NO ({disagreements} batches)'}"
        )


if __name__ == "__main__":
    main()
