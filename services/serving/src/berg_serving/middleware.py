"""The gates every inference call crosses before a route: the request count and the content type.

Both wrap the app (:func:`berg_serving.server.build_app`) and the direct V1 route
(:mod:`berg_serving.v1_direct`) alike, so both answer and count the same.
"""

from __future__ import annotations

from prometheus_client import Counter
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berg_serving.metrics import outcome_of

__all__ = ["INFERENCE_HEADER", "ContentTypeMiddleware", "RequestCountingMiddleware"]

INFERENCE_HEADER = "inference-header-content-length"
"""The Open Inference binary extension's header: the length of the body's JSON part."""


class ContentTypeMiddleware:
    """415 for an inference body that is neither JSON nor the Open Inference binary extension.

    A missing ``Content-Type`` (Triton's client sends none) is read as JSON, or as the
    binary extension when the ``inference-header-content-length`` header is there.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            v2 = path.endswith(("/infer", "/explain"))
            if v2 or path.endswith((":predict", ":explain")):
                headers = Headers(scope=scope)
                binary = v2 and INFERENCE_HEADER in headers
                media = headers.get("content-type", "").split(";")[0].strip().lower()
                if not media:
                    media = "application/octet-stream" if binary else "application/json"
                    scope = dict(scope)
                    scope["headers"] = [*scope["headers"], (b"content-type", media.encode("latin-1"))]
                if media != "application/json" and not (binary and media == "application/octet-stream"):
                    expected = "application/json" + (
                        " (or application/octet-stream with the inference-header-content-length header)" if v2 else ""
                    )
                    detail = f"unsupported content type {media!r}: send {expected}"
                    await JSONResponse({"error": detail}, status_code=415)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class RequestCountingMiddleware:
    """Counts every inference call (V1 ``:predict``, V2 ``/infer``) by protocol and the status it got
    (explain calls are not counted: they are not predictions).

    Outermost, so the refusals of the middlewares inside it (415, 413) are counted too.
    """

    def __init__(self, app: ASGIApp, requests: Counter) -> None:
        self.app = app
        self._requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        protocol = "v2" if path.endswith("/infer") else "v1" if path.endswith(":predict") else None
        if protocol is None:
            await self.app(scope, receive, send)
            return
        status = 500  # a response that never started is a server error

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self._requests.labels(protocol, outcome_of(status)).inc()
