"""The Kubeflow Pipelines launcher: a run of the compiled pipeline YAML through ``kfp.Client``.

The controller's run id is the Kubeflow run's display name. Starting a run
first looks for a Kubeflow run of that name, so a controller that died after
submitting and before recording the Kubeflow run id adopts that run on restart
instead of submitting a second one.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from berg.contracts.run_failure import error_head
from berg_controller.launchers.base import LaunchError, LaunchUnavailable, Progress, RecordStarted
from berg_controller.store import RunRecord

__all__ = ["KfpLauncher", "failed_task", "pipeline_arguments"]

log = logging.getLogger(__name__)

_SUCCEEDED = {"SUCCEEDED"}
_FAILED = {"FAILED", "CANCELED", "CANCELING", "SKIPPED"}


def pipeline_arguments(
    model: str, offline_root: str, registry_uri: str, extra: Mapping[str, str | int | float | bool]
) -> dict[str, Any]:
    """The pipeline's arguments for a run of ``model`` (``extra`` adds to and overrides the defaults)."""
    return {"offline_root": offline_root, "registry_uri": registry_uri, "model_name": model, **extra}


def _message(item: Any) -> str:
    """The ``error.message`` of a Kubeflow run or task (a ``googleRpcStatus``), or ``""``."""
    status = getattr(item, "error", None)
    return str(getattr(status, "message", None) or "") if status is not None else ""


def failed_task(remote: Any) -> tuple[str | None, str]:
    """The step of a failed Kubeflow run that failed first, and its error message.

    The run's ``run_details.task_details`` hold the root DAG, drivers and executors; the step is the failed
    task no other task depends on for its state (no failed child), the earliest to end if several failed.
    """
    details = getattr(remote, "run_details", None)
    tasks = list(getattr(details, "task_details", None) or [])
    failed = [task for task in tasks if str(getattr(task, "state", "") or "") == "FAILED"]
    failed_ids = {getattr(task, "task_id", None) for task in failed}

    def has_failed_child(task: Any) -> bool:
        children = getattr(task, "child_tasks", None) or []
        return any(getattr(child, "task_id", None) in failed_ids for child in children)

    leaves = [task for task in failed if not has_failed_child(task)]
    if not leaves:
        return None, ""
    first = min(leaves, key=lambda task: str(getattr(task, "end_time", "") or "~"))
    name = str(getattr(first, "display_name", "") or "") or None
    return name, _message(first)


def _client_error(error: Exception) -> bool:
    """An API answer of 4xx: the request itself is wrong, asking again will not help."""
    status = getattr(error, "status", None)
    return isinstance(status, int) and 400 <= status < 500


def _bound_requests(client: Any, timeout_s: float) -> None:
    """Give every later call of ``client`` a timeout (kfp's own calls take none, and could hang forever)."""
    import urllib3

    try:
        pool = client._run_api.api_client.rest_client.pool_manager
    except AttributeError:  # pragma: no cover - another kfp layout: keep its defaults
        log.warning("cannot set a timeout on the kfp client's requests")
        return
    pool.connection_pool_kw["timeout"] = urllib3.Timeout(total=timeout_s)
    pool.clear()


class KfpLauncher:
    """Submits and follows runs on a Kubeflow Pipelines API.

    Args:
        host: the API, e.g. ``http://ml-pipeline.kubeflow:8888``.
        package: the compiled pipeline YAML.
        experiment: the experiment runs are filed under.
        arguments: ``model -> pipeline arguments``.
        request_timeout_s: upper bound on one call to the API.
        client_factory: builds the client; default ``kfp.Client(host=host)``.
    """

    kind = "kfp"

    def __init__(
        self,
        host: str,
        package: Path,
        experiment: str,
        arguments: Callable[[str], dict[str, Any]],
        *,
        request_timeout_s: float = 30.0,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self._host = host
        self._package = package
        self._experiment = experiment
        self._arguments = arguments
        self._request_timeout_s = request_timeout_s
        self._client_factory = client_factory or self._default_client
        self._client: Any = None

    def _default_client(self) -> Any:
        import kfp

        with warnings.catch_warnings():
            # kfp warns on every Client that it needs a v2 backend: it is the one we run.
            warnings.simplefilter("ignore", FutureWarning)
            client = kfp.Client(host=self._host)
        _bound_requests(client, self._request_timeout_s)
        return client

    def _api(self) -> Any:
        if self._client is None:
            try:
                self._client = self._client_factory()
            except Exception as error:
                raise LaunchUnavailable(f"cannot reach the Kubeflow Pipelines API at {self._host}: {error}") from error
        return self._client

    def _existing(self, client: Any, run_id: str) -> str | None:
        query = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": run_id}]})
        found = client.list_runs(filter=query, page_size=5).runs or []
        return str(found[0].run_id) if found else None

    def start(self, run: RunRecord, record_started: RecordStarted) -> str:
        client = self._api()
        description = f"kfp run of {self._package} on {self._host} (experiment {self._experiment})"
        try:
            external = self._existing(client, run.id)
            if external is None:
                result = client.create_run_from_pipeline_package(
                    str(self._package),
                    arguments=self._arguments(run.model),
                    run_name=run.id,
                    experiment_name=self._experiment,
                )
                external = str(result.run_id)
            else:
                log.info("run %s was submitted before a restart; adopting Kubeflow run %s", run.id, external)
        except Exception as error:
            if _client_error(error) or isinstance(error, (FileNotFoundError, ValueError)):
                raise LaunchError(f"the Kubeflow Pipelines API refused run {run.id}: {error}") from error
            self._client = None
            raise LaunchUnavailable(f"the Kubeflow Pipelines API failed: {error}") from error
        record_started(external, description)
        return external

    def poll(self, run: RunRecord) -> Progress:
        if run.external_id is None:
            return Progress("not_started", "no Kubeflow run id was recorded")
        try:
            remote = self._api().get_run(run.external_id)
        except Exception as error:
            if _client_error(error):
                return Progress("failed", f"the Kubeflow run {run.external_id} cannot be read: {error}")
            self._client = None
            raise LaunchUnavailable(f"the Kubeflow Pipelines API failed: {error}") from error
        state = str(remote.state or "")
        if state in _SUCCEEDED:
            return Progress("succeeded", f"Kubeflow run {run.external_id} {state}")
        if state in _FAILED:
            message = _message(remote)
            step, step_message = failed_task(remote)
            return Progress(
                "failed",
                f"Kubeflow run {run.external_id} {state}" + (f": {message}" if message else ""),
                failed_step=step,
                error=error_head(step_message or message) or None,
            )
        return Progress("running", state)

    def stop(self, run: RunRecord) -> None:
        if run.external_id is None:
            return
        try:
            self._api().terminate_run(run.external_id)
        except Exception:
            log.warning("could not terminate Kubeflow run %s", run.external_id, exc_info=True)

    def close(self) -> None:
        self._client = None
