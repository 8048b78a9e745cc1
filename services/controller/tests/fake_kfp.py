"""A small stand-in for the Kubeflow Pipelines v2beta1 REST API: what ``kfp.Client`` calls to submit and follow runs.

It keeps experiments and runs in memory; a test moves a run's state by hand.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request

__all__ = ["FakeKfp"]


def _display_name_filter(raw: str | None) -> str | None:
    if not raw:
        return None
    for predicate in json.loads(raw).get("predicates", []):
        if predicate.get("key") == "display_name" and predicate.get("operation") == "EQUALS":
            return str(predicate.get("stringValue") or predicate.get("string_value"))
    return None


@dataclass
class FakeKfp:
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    terminated: list[str] = field(default_factory=list)
    fail_next_create: int = 0
    """Answer this many run creations with 503."""

    def set_state(
        self, run_id: str, state: str, message: str = "", *, failed_task: str = "", task_error: str = ""
    ) -> None:
        """Move a run; with ``failed_task`` its ``run_details`` hold the root DAG, a succeeded step and the failed
        step (with ``task_error``), as a Kubeflow v2 backend reports a failed run."""
        self.runs[run_id]["state"] = state
        if message:
            self.runs[run_id]["error"] = {"code": 2, "message": message}
        if failed_task:
            step = {
                "task_id": "task-2",
                "display_name": failed_task,
                "state": "FAILED",
                "end_time": "2026-01-01T00:10:00Z",
                "error": {"code": 2, "message": task_error},
            }
            self.runs[run_id]["run_details"] = {
                "task_details": [
                    {
                        "task_id": "task-0",
                        "display_name": "root",
                        "state": "FAILED",
                        "end_time": "2026-01-01T00:10:01Z",
                        "error": {"code": 2, "message": "a task failed"},
                        "child_tasks": [{"task_id": "task-1"}, {"task_id": "task-2"}],
                    },
                    {"task_id": "task-1", "display_name": "build-dataset", "state": "SUCCEEDED"},
                    step,
                ]
            }

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/apis/v2beta1/healthz")
        def healthz() -> dict[str, Any]:
            return {"multi_user": False}

        @app.get("/apis/v2beta1/experiments")
        def list_experiments(filter: str | None = None) -> dict[str, Any]:
            name = _display_name_filter(filter)
            found = [e for e in self.experiments.values() if name is None or e["display_name"] == name]
            return {"experiments": found, "total_size": len(found)} if found else {}

        @app.post("/apis/v2beta1/experiments")
        async def create_experiment(request: Request) -> dict[str, Any]:
            body = await request.json()
            experiment = {"experiment_id": str(uuid.uuid4()), "display_name": body["display_name"]}
            self.experiments[experiment["experiment_id"]] = experiment
            return experiment

        @app.post("/apis/v2beta1/runs/{run_id}:terminate")
        def terminate(run_id: str) -> dict[str, Any]:
            self.terminated.append(run_id)
            self.set_state(run_id, "CANCELED")
            return {}

        @app.post("/apis/v2beta1/runs")
        async def create_run(request: Request) -> dict[str, Any]:
            if self.fail_next_create > 0:
                self.fail_next_create -= 1
                raise HTTPException(503, "unavailable")
            body = await request.json()
            if "pipeline_spec" not in body:
                raise HTTPException(400, "no pipeline_spec")
            run = {
                "run_id": str(uuid.uuid4()),
                "display_name": body["display_name"],
                "experiment_id": body.get("experiment_id"),
                "state": "PENDING",
                "pipeline_spec": body["pipeline_spec"],
                "runtime_config": body.get("runtime_config", {}),
            }
            self.runs[run["run_id"]] = run
            return run

        @app.get("/apis/v2beta1/runs")
        def list_runs(filter: str | None = None) -> dict[str, Any]:
            name = _display_name_filter(filter)
            found = [r for r in self.runs.values() if name is None or r["display_name"] == name]
            return {"runs": found, "total_size": len(found)} if found else {}

        @app.get("/apis/v2beta1/runs/{run_id}")
        def get_run(run_id: str) -> dict[str, Any]:
            if run_id not in self.runs:
                raise HTTPException(404, "no such run")
            return self.runs[run_id]

        return app
