"""``berg pipeline compile | run | submit``: the training pipeline from the command line.

The ``berg`` command finds this group through the ``berg.commands`` entry point of
this package (``pipelines/pyproject.toml``): the core library never imports the
pipeline, and ``berg`` works without it. Kubeflow Pipelines, Feast and XGBoost are
imported only when a command runs (by :mod:`berg_pipelines.launch` and the steps).
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from berg.contracts.run_failure import RUN_FAILURE_FILE_ENV, RunFailureV1, error_head, write_run_failure
from berg.settings import SettingsError, load_settings
from berg.usecase import UseCaseError, resolve_use_case
from berg_app.stack.settings import StackSettings
from berg_pipelines import launch

__all__ = ["pipeline_app"]

console = Console()

pipeline_app = typer.Typer(
    help="The Kubeflow training pipeline: compile it, run it on this machine, or submit it to Kubeflow.",
    no_args_is_help=True,
)

WindowDays = Annotated[float, typer.Option(min=1, help="Days of labelled events to train and evaluate on.")]
WindowEnd = Annotated[
    str, typer.Option(help="ISO end of the window; default: the newest scored event minus the label horizon.")
]
ModelNameOption = Annotated[
    str | None,
    typer.Option(
        help="The model's name in the registry; default: the use case's (BERG_USE_CASE, or the only one installed).",
        show_default=False,
    ),
]
ParamsJson = Annotated[str, typer.Option(help="XGBoost settings as JSON, e.g. '{\"max_depth\": 6}'.")]
DaskScheduler = Annotated[str, typer.Option(help="Train with xgboost.dask on this scheduler (tcp://host:8786).")]


def _model_name(given: str | None) -> str:
    """``--model-name``, or the use case's name: the model it trains."""
    if given:
        return given
    try:
        return resolve_use_case(load_settings(StackSettings).use_case).name
    except (SettingsError, UseCaseError) as error:
        raise typer.BadParameter(f"no --model-name, and no use case to name the model: {error}") from None


def _arguments(
    offline_root: str, registry_uri: str, model_name: str, window_days: float, window_end: str, params: str, dask: str
) -> dict[str, Any]:
    try:
        json.loads(params or "{}")
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"--params-json is not JSON: {error}") from None
    return {
        "offline_root": offline_root,
        "registry_uri": registry_uri,
        "model_name": model_name,
        "window_days": window_days,
        "window_end": window_end,
        "params_json": params or "{}",
        "dask_scheduler": dask,
        "code_version": os.environ.get("BERG_CODE_VERSION", "dev"),
    }


@pipeline_app.command("compile")
def compile_command(
    output: Annotated[Path | None, typer.Option(help="Where to write the YAML.")] = None,
) -> None:
    """Write the compiled pipeline (pipelines/compiled/training.yaml, committed)."""
    written = launch.compile_pipeline(output or launch.COMPILED_PIPELINE)
    console.print(f"compiled -> {written}")


@pipeline_app.command("run")
def run_command(
    window_days: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="Days of labelled events to train and evaluate on; default: the stack's BERG_TRAINING_WINDOW_DAYS.",
        ),
    ] = None,
    window_end: WindowEnd = "",
    model_name: ModelNameOption = None,
    params_json: ParamsJson = "{}",
    dask_scheduler: DaskScheduler = "",
) -> None:
    """Run the pipeline on this machine (kfp.local) over the local stack's feature store and registry.

    When it fails and ``BERG_RUN_FAILURE_FILE`` is set (the controller sets it), the failing step and the head
    of its error are written there for the run record.
    """
    from berg.registry.registry import ModelRegistry

    model = _model_name(model_name)
    try:
        settings = load_settings(StackSettings)
        state = settings.state_dir.absolute()
        registry_uri = settings.model_registry_uri
        before = ModelRegistry(registry_uri).resolve(model, "production")
        days = window_days if window_days is not None else settings.training_window_days
        arguments = _arguments(
            str(state / "feast" / "offline"), registry_uri, model, days, window_end, params_json, dask_scheduler
        )
        run = launch.run_locally(arguments, state / "kfp", {"BERG_STATE_DIR": str(state)})
    except launch.StepFailed as failed:
        _report_failure(failed.step, failed.error)
        console.print(f"[red]step {escape(failed.step or '(unknown)')} failed:[/]\n{escape(failed.error)}")
        raise typer.Exit(1) from None
    except Exception as error:
        _report_failure(None, "".join(traceback.format_exception_only(error)))
        raise
    registry = ModelRegistry(registry_uri)
    versions = registry.versions(model)
    latest = versions[-1] if versions else None
    after = registry.resolve(model, "production")
    if latest is None:
        _report_failure(None, "the run registered no model")
        console.print("[red]the run registered no model[/]")
        raise typer.Exit(1)
    promoted = after is not None and (before is None or after.version != before.version)
    verdict = "[green]promoted to production[/]" if promoted else "[yellow]not promoted[/]"
    console.print(f"{model} {latest.version}: {verdict}")
    console.print(escape(str(latest.params.get("decision", ""))))
    reports = sorted(run.pipeline_root.rglob("evaluate/report"), key=lambda p: p.stat().st_mtime)
    if reports:
        console.print(f"evaluation report: {reports[-1]}")


def _report_failure(step: str | None, error: str) -> None:
    """Leave the failure for whoever started this run (``BERG_RUN_FAILURE_FILE``), if anyone asked."""
    target = os.environ.get(RUN_FAILURE_FILE_ENV)
    if target:
        write_run_failure(Path(target), RunFailureV1(step=step, error=error_head(error, os.environ)))


@pipeline_app.command("submit")
def submit_command(
    host: Annotated[str, typer.Option(help="The Kubeflow Pipelines API, e.g. http://ml-pipeline.kubeflow:8888.")],
    offline_root: Annotated[str, typer.Option(help="The feature store's offline root as the steps see it.")],
    registry_uri: Annotated[str, typer.Option(help="The model registry as the steps see it (s3://...).")],
    window_days: WindowDays = 30.0,
    window_end: WindowEnd = "",
    model_name: ModelNameOption = None,
    params_json: ParamsJson = "{}",
    dask_scheduler: DaskScheduler = "",
    experiment: Annotated[str, typer.Option(help="The Kubeflow experiment.")] = "berg",
    cron: Annotated[str, typer.Option(help="A recurring run on this schedule (six-field cron, with seconds).")] = "",
) -> None:
    """Send the compiled pipeline to a Kubeflow Pipelines API: one run, or a recurring run with --cron."""
    model = _model_name(model_name)
    arguments = _arguments(offline_root, registry_uri, model, window_days, window_end, params_json, dask_scheduler)
    run_id = launch.submit(host, arguments, experiment=experiment, cron=cron or None)
    kind = "recurring run" if cron else "run"
    console.print(f"submitted {kind} {run_id} to {host} (experiment {experiment})")
