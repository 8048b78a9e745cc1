"""The controller's HTTP routes: the Alertmanager webhook, manual runs, the run and trigger history, and rollouts
(unfinished ones, those waiting for approval, a person's approval or rejection).

Routes are thin: they translate between HTTP and :class:`~berg_controller.controller.Controller`.
The webhook's status codes follow Alertmanager's retry rules: 2xx once the alerts
are stored, 4xx for a request that can never succeed (not retried), 503 for
anything a retry may cure (retried). It never answers 500. A 503 says what was
unavailable in general words; the error itself (SQL, host names) goes to the log only.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from berg.contracts.alerts import AlertmanagerWebhookV4
from berg.registry import RolloutEvent, stage_of
from berg.registry.rollout import ACTOR_PATTERN
from berg_controller.auth import BearerToken
from berg_controller.controller import Controller, Decided
from berg_controller.results import RegistryUnavailable
from berg_controller.rollout_driver import NotAwaitingApproval, RolloutDriver, UnknownVersion
from berg_controller.store import RunRecord, StoreUnavailable, TriggerRecord

__all__ = [
    "DecisionView",
    "ReviewRequest",
    "RolloutEventView",
    "RolloutView",
    "RunRequest",
    "RunView",
    "TriggerView",
    "WebhookReply",
    "controller_routes",
]

log = logging.getLogger(__name__)

_VIEW = ConfigDict(extra="forbid", frozen=True)
_MAX_LIMIT = 1000


class RunView(BaseModel):
    """One pipeline run."""

    model_config = _VIEW

    id: str
    model: str
    launcher: str
    """``local`` or ``kfp``."""
    source: str
    """What triggered it: ``alert``, ``schedule``, ``data_volume`` or ``manual``."""
    reason: str
    status: str
    """``pending``, ``running``, ``succeeded`` or ``failed``."""
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    external_id: str | None
    """The local wrapper's pid, or the Kubeflow run id."""
    command: str | None
    exit_code: int | None
    detail: str | None
    result_version: str | None
    """The version the run registered, when known."""
    promoted: bool | None
    failed_step: str | None
    """A failed run's failing pipeline step, when known."""
    error: str | None
    """The first lines of a failed run's error (at most 20 lines, 2 KiB; secrets masked)."""

    @classmethod
    def of(cls, run: RunRecord) -> RunView:
        return cls(
            id=run.id,
            model=run.model,
            launcher=run.launcher,
            source=run.source,
            reason=run.reason,
            status=run.status,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            external_id=run.external_id,
            command=run.command,
            exit_code=run.exit_code,
            detail=run.detail,
            result_version=run.result_version,
            promoted=run.promoted,
            failed_step=run.failed_step,
            error=run.error,
        )


class TriggerView(BaseModel):
    """One trigger and the policy's decision."""

    model_config = _VIEW

    id: int
    created_at: datetime
    source: str
    model: str
    alertname: str
    decision: str
    """``started``, ``cooldown``, ``active_run``, ``rollout_pending``, ``ignored`` or ``not_production``."""
    reason: str
    run_id: str | None

    @classmethod
    def of(cls, trigger: TriggerRecord) -> TriggerView:
        return cls(
            id=trigger.id,
            created_at=trigger.created_at,
            source=trigger.source,
            model=trigger.model,
            alertname=trigger.alertname,
            decision=trigger.decision,
            reason=trigger.reason,
            run_id=trigger.run_id,
        )


class DecisionView(BaseModel):
    """What the policy decided for one new alert."""

    model_config = _VIEW

    model: str
    source: str
    decision: str
    reason: str
    run_id: str | None

    @classmethod
    def of(cls, decided: Decided) -> DecisionView:
        return cls(
            model=decided.trigger.model,
            source=decided.trigger.source,
            decision=decided.verdict.decision,
            reason=decided.verdict.reason,
            run_id=decided.run.id if decided.run else None,
        )


class WebhookReply(BaseModel):
    """The webhook's answer: every alert is stored; new ones were decided."""

    model_config = _VIEW

    alerts: int
    duplicates: int
    """Alerts received before (a redelivery): nothing new was decided for them."""
    runs_started: list[str]
    decisions: list[DecisionView]


class RunRequest(BaseModel):
    """A manual run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    """A model the controller manages."""
    reason: Annotated[str, StringConstraints(max_length=400)] = ""
    """Why, for the trigger history."""


class RolloutEventView(BaseModel):
    """One step of a version's rollout."""

    model_config = _VIEW

    action: str
    at: datetime
    actor: str
    reason: str
    details: dict[str, Any]

    @classmethod
    def of(cls, event: RolloutEvent) -> RolloutEventView:
        return cls(action=event.action, at=event.at, actor=event.actor, reason=event.reason, details=event.details)


class RolloutView(BaseModel):
    """A version on its way to production: its stage and every step so far."""

    model_config = _VIEW

    model: str
    version: str
    stage: str
    """``candidate``, ``shadow``, ``awaiting_approval`` or ``approved`` (an unfinished rollout)."""
    policy: str
    history: list[RolloutEventView]

    @classmethod
    def of(cls, model: str, version: str, history: list[RolloutEvent]) -> RolloutView:
        return cls(
            model=model,
            version=version,
            stage=stage_of(history) or "",
            policy=history[0].policy if history else "",
            history=[RolloutEventView.of(event) for event in history],
        )


class ReviewRequest(BaseModel):
    """A person's approval or rejection of a version waiting for one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: Annotated[str, StringConstraints(pattern=ACTOR_PATTERN)]
    """Who decides: a user name or an e-mail address (kept in the registry's history)."""
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)]
    """Why (kept in the registry's history)."""


class ErrorReply(BaseModel):
    """Every error's shape."""

    error: str
    detail: Any = Field(default=None)


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorReply, "description": "No bearer token, or a wrong one."},
    503: {"model": ErrorReply, "description": "The database or the model registry is unavailable; retry."},
}

_RETRY_AFTER = {"Retry-After": "5"}


def _unavailable(what: str, error: Exception) -> HTTPException:
    """A 503 naming ``what`` was unavailable; ``error`` (which may hold SQL or host names) is logged only."""
    log.warning("answering 503: %s", error)
    return HTTPException(status_code=503, detail=f"{what} is unavailable; try again later", headers=_RETRY_AFTER)


def _database_unavailable(error: Exception) -> HTTPException:
    return _unavailable("the controller's database", error)


def controller_routes(controller: Controller, token: BearerToken) -> APIRouter:
    """The controller's routes; ``token`` guards the ones that change state, before their body is read."""
    router = APIRouter()
    guarded = APIRouter(route_class=token.route_class(), dependencies=[Depends(token.dependency())])

    @guarded.post("/alerts", tags=["alerts"], responses=_ERRORS)
    def receive_alerts(payload: AlertmanagerWebhookV4) -> WebhookReply:
        """Alertmanager's webhook (payload version 4): store each alert once, start the runs the policy allows."""
        try:
            outcome = controller.receive(payload)
        except StoreUnavailable as error:
            raise _database_unavailable(error) from None
        except RegistryUnavailable as error:
            raise _unavailable("the model registry", error) from None
        except Exception:
            # Alertmanager retries a 5xx: a bug here must not lose the notification.
            log.exception("webhook failed; answering 503 so Alertmanager delivers again")
            raise HTTPException(503, "the webhook failed; try again later", headers=_RETRY_AFTER) from None
        return WebhookReply(
            alerts=outcome.alerts,
            duplicates=outcome.duplicates,
            runs_started=outcome.runs_started,
            decisions=[DecisionView.of(item) for item in outcome.decided],
        )

    @guarded.post(
        "/runs",
        tags=["runs"],
        status_code=202,
        responses={
            **_ERRORS,
            404: {"model": ErrorReply, "description": "The controller does not manage this model."},
            409: {"model": ErrorReply, "description": "The model has an active run."},
        },
    )
    def request_run(request: RunRequest) -> RunView:
        """Start a run of a model now (the cooldown does not apply; one active run per model does)."""
        if request.model not in controller.policy.models:
            raise HTTPException(404, f"model {request.model!r} is not managed here: {sorted(controller.policy.models)}")
        try:
            decided = controller.request_run(request.model, request.reason)
        except StoreUnavailable as error:
            raise _database_unavailable(error) from None
        except RegistryUnavailable as error:
            raise _unavailable("the model registry", error) from None
        if decided.run is None:
            detail = {"message": decided.verdict.reason, "active_run": decided.active_run}
            raise HTTPException(409, detail)
        return RunView.of(decided.run)

    @router.get("/runs", tags=["runs"], responses=_ERRORS)
    def list_runs(
        limit: Annotated[int, Query(ge=1, le=_MAX_LIMIT)] = 50,
        model: Annotated[str | None, Query(max_length=64)] = None,
    ) -> list[RunView]:
        """Runs, newest first."""
        try:
            return [RunView.of(run) for run in controller.store.runs(limit, model)]
        except StoreUnavailable as error:
            raise _database_unavailable(error) from None

    @router.get("/runs/{run_id}", tags=["runs"], responses={**_ERRORS, 404: {"model": ErrorReply}})
    def get_run(run_id: Annotated[str, Path(max_length=64)]) -> RunView:
        """One run."""
        try:
            run = controller.store.run(run_id)
        except StoreUnavailable as error:
            raise _database_unavailable(error) from None
        if run is None:
            raise HTTPException(404, f"no run {run_id!r}")
        return RunView.of(run)

    @router.get("/triggers", tags=["triggers"], responses=_ERRORS)
    def list_triggers(
        limit: Annotated[int, Query(ge=1, le=_MAX_LIMIT)] = 50,
        model: Annotated[str | None, Query(max_length=200)] = None,
    ) -> list[TriggerView]:
        """Triggers with the policy's decision and reason, newest first."""
        try:
            return [TriggerView.of(trigger) for trigger in controller.store.triggers(limit, model)]
        except StoreUnavailable as error:
            raise _database_unavailable(error) from None

    rollouts = controller.rollouts
    if rollouts is not None:
        _rollout_routes(router, guarded, rollouts, sorted(controller.policy.models))
    router.include_router(guarded)
    return router


ModelPath = Annotated[str, Path(max_length=64)]
VersionPath = Annotated[str, Path(max_length=32)]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorReply, "description": "The controller does not manage this model, or no such version."}
}


def _rollout_routes(router: APIRouter, guarded: APIRouter, rollouts: RolloutDriver, models: list[str]) -> None:
    def managed(model: str | None) -> list[str]:
        if model is None:
            return models
        if model not in models:
            raise HTTPException(404, f"model {model!r} is not managed here: {models}")
        return [model]

    def registry_unavailable(error: Exception) -> HTTPException:
        return _unavailable("the model registry", error)

    @router.get("/rollouts", tags=["rollouts"], responses={**_ERRORS, **_NOT_FOUND})
    def list_rollouts(model: Annotated[str | None, Query(max_length=64)] = None) -> list[RolloutView]:
        """Unfinished rollouts (candidate, shadow, awaiting approval, approved) with their history."""
        try:
            return [RolloutView.of(m, v, h) for m in managed(model) for v, h in rollouts.unfinished(m)]
        except (OSError, ValueError) as error:
            raise registry_unavailable(error) from None

    @router.get("/rollouts/pending", tags=["rollouts"], responses={**_ERRORS, **_NOT_FOUND})
    def list_pending(model: Annotated[str | None, Query(max_length=64)] = None) -> list[RolloutView]:
        """Versions waiting for a person's approval."""
        try:
            return [RolloutView.of(m, v, h) for m in managed(model) for v, h in rollouts.pending(m)]
        except (OSError, ValueError) as error:
            raise registry_unavailable(error) from None

    def review(model: str, version: str, request: ReviewRequest, *, approve: bool) -> RolloutView:
        managed(model)
        try:
            rollouts.review(model, version, approve=approve, actor=request.by, reason=request.reason)
            return RolloutView.of(model, version, rollouts.history(model, version))
        except UnknownVersion as error:
            raise HTTPException(404, str(error)) from None
        except NotAwaitingApproval as error:
            raise HTTPException(409, str(error)) from None
        except (OSError, ValueError) as error:
            raise registry_unavailable(error) from None

    review_responses: dict[int | str, dict[str, Any]] = {
        **_ERRORS,
        **_NOT_FOUND,
        409: {"model": ErrorReply, "description": "The version is not waiting for approval."},
    }

    @guarded.post("/rollouts/{model}/{version}/approve", tags=["rollouts"], responses=review_responses)
    def approve(model: ModelPath, version: VersionPath, request: ReviewRequest) -> RolloutView:
        """Approve a version waiting for approval; the controller promotes it on its next tick."""
        return review(model, version, request, approve=True)

    @guarded.post("/rollouts/{model}/{version}/reject", tags=["rollouts"], responses=review_responses)
    def reject(model: ModelPath, version: VersionPath, request: ReviewRequest) -> RolloutView:
        """Reject a version waiting for approval; production stays as it is."""
        return review(model, version, request, approve=False)
