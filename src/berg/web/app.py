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
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berg.observability.health import ReadinessChecks

__all__ = ["BodyLimitMiddleware", "WebSettings", "create_app", "error_body", "internal_error"]

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


_ERROR_CODES = {413: "content_too_large", 422: "invalid_request"}
"""Codes whose HTTP phrase differs between Python versions, pinned."""


def _error_code(status: int) -> str:
    if status in _ERROR_CODES:
        return _ERROR_CODES[status]
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


def internal_error(method: str, path: str, exc: BaseException) -> JSONResponse:
    """A bug's answer, logged with its traceback: a 500 that says where to look (the input is not echoed)."""
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return JSONResponse(error_body("internal_error", "an unexpected error occurred; see the service log"), 500)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    return internal_error(request.method, request.url.path, exc)


class _BodyTooLarge(StarletteHTTPException):
    # An HTTPException, so FastAPI's body parsing lets it through to the JSON handler.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_body_bytes`` with a JSON 413, counting the bytes that stream in.

    A declared ``Content-Length`` over the limit is refused before the body is
    read; a chunked (or lying) body is cut off as soon as the running count
    passes the limit. FastAPI's own ``max_body_size`` counts bytes too, but
    answers a declared oversize body in plain text, which breaks the promise
    that every Berg error is JSON.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            # Reached only from routes outside FastAPI's exception handling (mounted apps).
            if response_started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body exceeds the limit of {self.max_body_bytes} bytes"
        await JSONResponse(error_body("content_too_large", detail), status_code=413)(scope, receive, send)


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
        registry: the registry served at ``/metrics``: the service's own, or one that collects the metrics of
            all its worker processes (``prometheus_client.multiprocess``).
        readiness: checks behind ``/readyz``; none means always ready.
        version: the service version for the OpenAPI document.
    """
    checks = readiness or ReadinessChecks()
    app = FastAPI(title=title, version=version)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
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
