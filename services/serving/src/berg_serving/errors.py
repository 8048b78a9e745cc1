"""Serving's errors: the predictor's failures, and the HTTP status and JSON answer of each error a request meets.

The client's errors are KServe's (``InvalidInput``, ``ModelNotFound``...); :func:`error_response` gives each
the protocol's error shape (``{"error": <message>}``) with a 4xx for what the client sent, never a 5xx.
"""

from __future__ import annotations

import logging

from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)
from starlette.responses import JSONResponse

__all__ = ["ANSWERED_ERRORS", "UpstreamError", "error_response", "error_status"]

log = logging.getLogger("berg_serving.server")  # the name these lines were always logged under


class UpstreamError(RuntimeError):
    """The predictor (the transformer's upstream) failed: 503 when unavailable, else 502.

    ``reason`` is the message, as on KServe's own errors (its gRPC interceptor reads it).
    """

    def __init__(self, reason: str, *, unavailable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unavailable = unavailable

    @property
    def status_code(self) -> int:
        return 503 if self.unavailable else 502


_CLIENT_ERRORS: dict[type[Exception], int] = {
    InvalidInput: 400,
    ModelNotFound: 404,
    UnsupportedProtocol: 400,
}
_UNAVAILABLE = (ModelNotReady, ServerNotReady, ServerNotLive)

ANSWERED_ERRORS: tuple[type[Exception], ...] = (
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotReady,
    ServerNotLive,
    UnsupportedProtocol,
    InferenceError,
    UpstreamError,
    NotImplementedError,
)
"""The errors answered by :func:`error_response`; any other is a bug, answered as the app's unexpected errors."""


def error_status(error: Exception) -> int:
    """The HTTP status of ``error``: 4xx for what the client sent, 503 while not ready, 501, 502, else 500."""
    if isinstance(error, UpstreamError):
        return error.status_code
    if isinstance(error, _UNAVAILABLE):
        return 503
    if isinstance(error, NotImplementedError):
        return 501
    for kind, status in _CLIENT_ERRORS.items():
        if isinstance(error, kind):
            return status
    return 500


def error_response(error: Exception) -> JSONResponse:
    """``{"error": <message>}`` with :func:`error_status`, logged (a client's error at info level)."""
    status = error_status(error)
    if status >= 500:
        log.error("inference failed: %s", error, exc_info=not isinstance(error, (*_UNAVAILABLE, UpstreamError)))
    else:
        log.info("refused an inference request (%d): %s", status, error)
    return JSONResponse({"error": str(error)}, status_code=status)
