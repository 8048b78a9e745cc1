"""KServe's V1 predict verb served in front of the app's ASGI stack (``BERG_SERVING_V1_ROUTE=direct``).

``POST /v1/models/<name>:predict`` is the hot path. Through the app it crosses FastAPI's and Starlette's
layers (error middleware, exception middleware, router, request wrapper, each wrapping ``send``), then
KServe's ``V1Endpoints`` and ``DataPlane.infer``. Here it goes through only the layers that decide what the
client gets (the request counting, the content type's 415, the body limit's 413: the app's own middleware
classes, in the app's order) to KServe's V1 handler with the model's stages called directly. Everything
else goes to the app unchanged.

The protocol is the same on both routes: the same decoding (``DataPlane.decode``: JSON and CloudEvents),
the same errors (404 for another model, 503 before a model is ready, 400 for what the client sent, as
``{"error": <message>}``), the same encoding (``DataPlane.encode``) and the same JSON answer (orjson, as
KServe's ``ORJSONResponse``). What it leaves out changes nothing on the wire: FastAPI's dependency solving,
``DataPlane.infer``'s model lookup and readiness hop, ``Model.__call__``'s own timers and logging (KServe's
histograms, which this server does not expose), and the layers above the route.
"""

from __future__ import annotations

import orjson
from kserve.errors import ModelNotReady
from kserve.protocol.dataplane import DataPlane
from prometheus_client import Counter
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from berg.web.app import BodyLimitMiddleware, internal_error
from berg_serving.errors import ANSWERED_ERRORS, error_response
from berg_serving.middleware import ContentTypeMiddleware, RequestCountingMiddleware

__all__ = ["V1PredictFront", "direct_v1_predict"]


_PREFIX = "/v1/models/"
_VERB = ":predict"


def _model_name(path: str) -> str | None:
    """``<name>`` of ``/v1/models/<name>:predict`` (a name has no ``/``, as in the app's route), else None."""
    if not (path.startswith(_PREFIX) and path.endswith(_VERB)):
        return None
    name = path[len(_PREFIX) : -len(_VERB)]
    return name if name and "/" not in name else None


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def direct_v1_predict(dataplane: DataPlane) -> ASGIApp:
    """An ASGI app answering ``POST /v1/models/<name>:predict`` as KServe's ``V1Endpoints.predict`` does."""

    async def answer(model_name: str, body: bytes, headers: dict[str, str]) -> Response:
        model = dataplane.get_model_from_registry(model_name)
        if not model.is_ready():
            raise ModelNotReady(model_name)
        request, attributes = dataplane.decode(body=body, headers=headers)
        response, response_headers = await model.predict_direct(request, headers)
        response, encoded = dataplane.encode(
            model_name=model_name, response=response, headers=headers, req_attributes=attributes
        )
        response_headers.update(encoded)
        response_headers.pop("content-length", None)
        if isinstance(response, bytes | str):
            return Response(content=response, headers=response_headers)
        content = orjson.dumps(response, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
        return Response(content=content, media_type="application/json", headers=response_headers)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # Read outside the error handling: the body limit's refusal is the limit middleware's to answer.
        body = await _read_body(receive)
        if body is None:
            return
        model_name = _model_name(scope["path"]) or ""
        # As Starlette's ``Request.headers``: names lower-case (ASGI's), the last of repeated names wins.
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        response: Response
        try:
            response = await answer(model_name, body, headers)
        except ANSWERED_ERRORS as error:
            response = error_response(error)
        except Exception as error:
            response = internal_error("POST", scope["path"], error)  # as the app answers a bug
        await response(scope, receive, send)

    return app


class V1PredictFront:
    """The ASGI app the server listens with: V1 predict straight to :func:`direct_v1_predict` behind the
    request counting, the content type and the body limit; every other request to ``app``."""

    def __init__(self, app: ASGIApp, dataplane: DataPlane, requests: Counter, max_body_bytes: int) -> None:
        self.app = app
        predict = BodyLimitMiddleware(direct_v1_predict(dataplane), max_body_bytes=max_body_bytes)
        self._predict = RequestCountingMiddleware(ContentTypeMiddleware(predict), requests=requests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _model_name(scope["path"]) is not None:
            await self._predict(scope, receive, send)
        else:
            await self.app(scope, receive, send)
