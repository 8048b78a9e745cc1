"""The FastAPI app factory: body limit, JSON errors, health, readiness and metrics.

Every Berg HTTP service starts from :func:`create_app` and adds its own routers.
Bad input is the client's problem and gets a 4xx with a JSON body that says
what is wrong; a 5xx means a bug or an unavailable dependency, never bad input.

Example:
    >>> app = create_app(WebSettings(), title="ingestion", registry=CollectorRegistry())
    >>> app.include_router(my_routes)
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from berg.observability.health import ReadinessChecks

__all__ = ["WebSettings", "create_app", "error_body"]

log = logging.getLogger(__name__)

_MAX_REPORTED_ERRORS = 20


class WebSettings(BaseModel):
    """How a service's HTTP server listens and what it accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    """Interface to bind; loopback by default, ``0.0.0.0`` in a container."""
    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port; 0 picks a free one (tests)."""
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    """Larger request bodies get 413, counted as the bytes stream in."""


def error_body(error: str, detail: Any) -> dict[str, Any]:
    """The JSON shape of every Berg error response."""
    return {"error": error, "detail": detail}


def _error_code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body(_error_code(exc.status_code), exc.detail),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # The offending input is not echoed back: it may be large or sensitive.
    problems = [
        {"loc": list(problem.get("loc", ())), "msg": problem.get("msg", ""), "type": problem.get("type", "")}
        for problem in exc.errors()[:_MAX_REPORTED_ERRORS]
    ]
    return JSONResponse(error_body("invalid_request", problems), status_code=422)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal_error", "an unexpected error occurred; see the service log"), 500)


def create_app(
    settings: WebSettings,
    *,
    title: str,
    registry: CollectorRegistry,
    readiness: ReadinessChecks | None = None,
    version: str = "0.1.0",
) -> FastAPI:
    """Build a FastAPI app with Berg's common behaviour.

    Args:
        settings: listen address and body limit.
        title: the service name, shown in the OpenAPI document.
        registry: the service's own metrics registry, served at ``/metrics``.
        readiness: checks behind ``/readyz``; none means always ready.
        version: the service version for the OpenAPI document.
    """
    checks = readiness or ReadinessChecks()
    app = FastAPI(title=title, version=version, max_body_size=settings.max_body_bytes)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers HTTP."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        """Readiness: every dependency check passes (503 with the failing ones otherwise)."""
        result = checks.run()
        status = "ready" if result.ready else "not_ready"
        return JSONResponse({"status": status, "checks": result.checks}, status_code=200 if result.ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus exposition of the service's registry."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.state.readiness = checks
    return app
