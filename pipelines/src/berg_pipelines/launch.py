"""Compile, run on this machine (kfp.local), or submit to a Kubeflow Pipelines API."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berg_pipelines.failures import OutputTail, StepFailed, error_lines, failed_step

__all__ = ["COMPILED_PIPELINE", "LocalRun", "StepFailed", "compile_pipeline", "run_locally", "submit"]

COMPILED_PIPELINE = Path(__file__).resolve().parents[2] / "compiled" / "training.yaml"
"""The committed compiled pipeline (a golden test keeps it equal to the source)."""


def compile_pipeline(output: Path = COMPILED_PIPELINE) -> Path:
    from kfp import compiler

    from berg_pipelines.pipeline import training

    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(training, str(output))
    return output


@dataclass(frozen=True)
class LocalRun:
    pipeline_root: Path
    arguments: Mapping[str, Any]


def run_locally(arguments: Mapping[str, Any], pipeline_root: Path, environment: Mapping[str, str]) -> LocalRun:
    """Run the pipeline here with kfp.local's SubprocessRunner, in this Python environment.

    Each step is a child process of this one, which inherits ``environment`` (the
    feature store's variables, e.g. ``BERG_STATE_DIR``).

    Raises:
        StepFailed: a step failed: its name, and the exception lines of its traceback (its whole log is in
            the output above).
    """
    from kfp import local

    from berg_pipelines.pipeline import training

    os.environ.update(environment)
    pipeline_root.mkdir(parents=True, exist_ok=True)
    # use_venv=False: the steps run in this environment, which has Berg installed (the
    # training image's role on a cluster); nothing is pip-installed.
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True)
    with OutputTail.capture() as tail:
        try:
            training(**arguments)
        except RuntimeError as error:
            step = failed_step(str(error))
            if step is None:
                raise
            raise StepFailed(step, "\n".join(error_lines(tail.lines())) or str(error)) from error
    return LocalRun(pipeline_root, dict(arguments))


def submit(
    host: str,
    arguments: Mapping[str, Any],
    *,
    experiment: str = "berg",
    run_name: str | None = None,
    cron: str | None = None,
    package: Path = COMPILED_PIPELINE,
    client: Any = None,
) -> str:
    """Send the compiled pipeline to a Kubeflow Pipelines API: one run, or a recurring run when ``cron`` is set.

    Returns the run (or recurring run) id.
    """
    if client is None:
        import kfp

        client = kfp.Client(host=host)
    experiment_id = client.create_experiment(name=experiment).experiment_id
    if cron:
        job = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=run_name or "berg-training-schedule",
            cron_expression=cron,
            pipeline_package_path=str(package),
            params=dict(arguments),
            max_concurrency=1,
            no_catchup=True,
        )
        return str(job.recurring_run_id)
    run = client.create_run_from_pipeline_package(
        str(package), arguments=dict(arguments), run_name=run_name, experiment_name=experiment
    )
    return str(run.run_id)
