"""A stand-in for ``berg pipeline run``: records that it started, sleeps, exits with a chosen status.

    python fake_pipeline.py --starts FILE --model fraud --run-id ID [--sleep S] [--exit-code N] [--register]
                            [--output LINE]... [--fail-step STEP --error TEXT] [--hold FILE]

Each start appends ``<run id> <model> <pid>`` to FILE, so tests count how often
the pipeline really ran. With ``--register`` it registers a version of the model
in ``BERG_REGISTRY_URI`` (as the real pipeline does) and promotes it. ``--output``
prints lines; ``--fail-step`` reports a failed step and its error to
``BERG_RUN_FAILURE_FILE`` as ``berg pipeline run`` does (pass a non-zero
``--exit-code`` with it). ``--hold`` keeps it running until FILE exists, so a test
decides when it ends instead of racing a sleep on a busy machine. SIGTERM ends it with 143.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--register", action="store_true")
    parser.add_argument("--output", action="append", default=[])
    parser.add_argument("--fail-step", default="")
    parser.add_argument("--error", default="")
    parser.add_argument("--hold", default="")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with open(args.starts, "a", encoding="utf-8") as handle:
        handle.write(f"{args.run_id} {args.model} {os.getpid()}\n")
    sys.stdout.write(f"fake pipeline for {args.model} (run {args.run_id}) sleeping {args.sleep}s\n")
    sys.stdout.flush()
    time.sleep(args.sleep)
    hold_deadline = time.monotonic() + 600  # only bounds a test that never releases it
    while args.hold and not os.path.exists(args.hold) and time.monotonic() < hold_deadline:
        time.sleep(0.05)
    if args.register:
        register(args.model, args.run_id)
    for line in args.output:
        sys.stdout.write(line + "\n")
    if args.fail_step:
        report_failure(args.fail_step, args.error)
    return args.exit_code


def report_failure(step: str, error: str) -> None:
    from pathlib import Path

    from berg.contracts.run_failure import RUN_FAILURE_FILE_ENV, RunFailureV1, error_head, write_run_failure

    write_run_failure(Path(os.environ[RUN_FAILURE_FILE_ENV]), RunFailureV1(step=step, error=error_head(error)))


def register(model: str, run_id: str) -> None:
    from datetime import UTC, datetime, timedelta

    from berg.registry import Lineage, ModelRegistry, VersionMetadata

    registry = ModelRegistry(os.environ["BERG_REGISTRY_URI"])
    end = datetime.now(UTC)
    lineage = Lineage(
        data_start=end - timedelta(days=30),
        data_end=end,
        feature_service="fraud_model_v1",
        pipeline_run_id=run_id,
        code_version="test",
    )
    version = registry.register(model, {"model.bst": b"not really xgboost"}, VersionMetadata(lineage=lineage))
    registry.promote(model, version.version, reason="fake pipeline")


if __name__ == "__main__":
    sys.exit(main())
