"""The model server: KServe's data plane behind Berg's HTTP app and a gRPC listener, with a graceful stop.

KServe's ``ModelServer`` parses ``sys.argv`` at import, serves a module-level app
and stops on SIGTERM by closing its listeners at once, so readiness never turns
503 first. This server keeps KServe's transport-free core (``DataPlane``, its V1 and
V2 endpoint handlers, its gRPC servicer) and supplies the rest:

- the HTTP app is Berg's (:func:`berg.web.app.create_app`: body limit, JSON errors,
  ``/healthz``, ``/readyz``, ``/metrics``), with the inference routes added one by one
  (no model load/unload routes), a V1 request schema in the OpenAPI (the use case's
  scored contract, with the value rules a JSON Schema can say), and a
  415 for a body that is neither JSON nor Open Inference binary;
- explain: KServe's V1 verb (``POST /v1/models/<name>:explain``) and, since the Open Inference
  Protocol has none, a Berg route taking the V2 scoring request (``POST /v2/models/<name>/explain``);
  both go through KServe's ``DataPlane.explain`` to the model's ``explain`` and answer the same JSON
  (:mod:`berg_serving.explanations`), with ``top_k`` as a query parameter;
- a body that is not standard JSON (``NaN``, ``Infinity``, ``1e400``) is a 400 naming the
  field that holds the number (:mod:`berg_serving.json_body`);
- KServe's errors become ``{"error": <message>}`` (the protocol's error shape) with
  4xx for what the client sent: a malformed request never answers 5xx;
- the stop: on SIGTERM or SIGINT readiness turns 503 (``/readyz``, V2 ``/health/ready``
  and gRPC ``ServerReady``) while requests are still served for ``drain_delay_s``; then
  the listeners close, in-flight requests finish, and the process exits, all within
  ``grace_period_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Annotated, Any, NoReturn

import uvicorn
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from grpc import StatusCode, aio
from grpc_interceptor import AsyncExceptionToStatusInterceptor
from grpc_interceptor.exceptions import GrpcException
from kserve import Model, ModelRepository
from kserve.constants.constants import PredictorProtocol
from kserve.errors import (
    InvalidInput,
    ModelNotReady,
)
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.v1_endpoints import V1Endpoints
from kserve.protocol.rest.v2_datamodels import (
    InferenceRequest,
    InferenceResponse,
    ListModelsResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
)
from kserve.protocol.rest.v2_endpoints import V2Endpoints
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel
from starlette.types import ASGIApp

from berg.contracts.rules import ValueRule, json_schema_with_rules
from berg.observability.health import ReadinessChecks
from berg.web.app import create_app
from berg_serving.errors import ANSWERED_ERRORS, error_response, error_status
from berg_serving.explanations import DEFAULT_TOP_K, TOP_K_HEADER
from berg_serving.json_body import non_finite_numbers
from berg_serving.metrics import outcome_of, request_counter
from berg_serving.middleware import INFERENCE_HEADER, ContentTypeMiddleware, RequestCountingMiddleware
from berg_serving.settings import ServingSettings
from berg_serving.v1_direct import V1PredictFront

__all__ = ["ServingServer", "build_app", "v1_request_schema"]

log = logging.getLogger(__name__)

_GRPC_CODES = {
    400: StatusCode.INVALID_ARGUMENT,
    404: StatusCode.NOT_FOUND,
    501: StatusCode.UNIMPLEMENTED,
    502: StatusCode.INTERNAL,
    503: StatusCode.UNAVAILABLE,
}


def v1_request_schema(contract: type[BaseModel], rules: Sequence[ValueRule]) -> dict[str, Any]:
    """The V1 predict route's OpenAPI body: KServe's handler reads the raw body, so it is given here.

    Each instance is an event of ``contract`` (the use case's scored contract), its schema carrying the
    value rules a JSON Schema can say (bounds, known sets).
    """
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["instances"],
                        "properties": {
                            "instances": {
                                "type": "array",
                                "minItems": 1,
                                "items": json_schema_with_rules(contract, rules),
                            }
                        },
                    }
                }
            },
        }
    }


class ServingDataPlane(DataPlane):  # type: ignore[misc]  # kserve is untyped
    """KServe's data plane with Berg's readiness, and malformed bodies refused as client errors."""

    def __init__(self, repository: ModelRepository, readiness: ReadinessChecks) -> None:
        super().__init__(model_registry=repository)
        self._readiness = readiness

    async def ready(self) -> bool:
        return self._readiness.run().ready

    def decode(self, body: Any, headers: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().decode(body, headers, *args, **kwargs)
        except InvalidInput as error:
            found = non_finite_numbers(_json_part(body, headers)) if isinstance(body, bytes) else []
            if found:
                raise InvalidInput("; ".join(found[:5])) from None
            raise error from None
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
            # KServe's binary V2 decoder indexes the JSON header without checking it.
            raise InvalidInput(f"malformed inference request: {error!r}") from None


def _json_part(body: bytes, headers: Any) -> bytes:
    """The JSON of a body: all of it, or the header of an Open Inference binary body."""
    length = str((headers or {}).get(INFERENCE_HEADER, ""))
    return body[: int(length)] if length.isdigit() else body


async def _kserve_error(_: Request, error: Exception) -> JSONResponse:
    return error_response(error)


def build_app(
    settings: ServingSettings[Any],
    model_name: str,
    dataplane: ServingDataPlane,
    registry: CollectorRegistry,
    readiness: ReadinessChecks,
    requests: Counter,
    contract: type[BaseModel],
    value_rules: Sequence[ValueRule] = (),
) -> FastAPI:
    """Berg's app with KServe's V1 and V2 inference routes for ``model_name``; ``requests`` is
    :func:`request_counter` and ``registry`` what ``/metrics`` serves; the V1 body's schema is ``contract``
    (the scored events') with what ``value_rules`` a JSON Schema can say."""
    title = f"berg-serving ({model_name})"
    app = create_app(settings.web, title=title, registry=registry, readiness=readiness)
    app.add_middleware(ContentTypeMiddleware)
    app.add_middleware(RequestCountingMiddleware, requests=requests)
    for kind in ANSWERED_ERRORS:
        app.add_exception_handler(kind, _kserve_error)

    v1 = V1Endpoints(dataplane)
    router = APIRouter(prefix="/v1", tags=["V1"])
    router.add_api_route("/models", v1.models, methods=["GET"])
    router.add_api_route("/models/{model_name}", v1.model_ready, methods=["GET"])
    router.add_api_route(
        "/models/{model_name}:predict",
        v1.predict,
        methods=["POST"],
        response_model=None,
        openapi_extra=v1_request_schema(contract, value_rules),
    )

    async def explain_v1(model_name: str, request: Request, top_k: TopK = DEFAULT_TOP_K) -> Response:
        """KServe's V1 explain verb, answered in this process: scores with each feature's contribution."""
        await _check_model_ready(dataplane, model_name)
        headers = _explain_headers(request, top_k)
        body, _ = dataplane.decode(body=await request.body(), headers=headers)
        return await _explain(dataplane, model_name, body, headers)

    router.add_api_route(
        "/models/{model_name}:explain",
        explain_v1,
        methods=["POST"],
        response_model=None,
        openapi_extra=v1_request_schema(contract, value_rules),
    )
    app.include_router(router)

    v2 = V2Endpoints(dataplane)

    async def explain_v2(
        raw_request: Request, model_name: str, request_body: InferenceRequest | bytes, top_k: TopK = DEFAULT_TOP_K
    ) -> Response:
        """The V2 scoring request (JSON or binary), explained as V1's explain verb is (the same JSON answer)."""
        await _check_model_ready(dataplane, model_name)
        headers = _explain_headers(raw_request, top_k)
        body, _ = dataplane.decode(
            request_body, headers, protocol_version=PredictorProtocol.REST_V2.value, model_name=model_name
        )
        return await _explain(dataplane, model_name, body, headers)

    # Thin wrappers: KServe's handlers take a ``model_version`` that they refuse with a 501, and only the
    # version the registry's alias names is served, so versions are not addressable here.
    async def model_metadata(model_name: str) -> ModelMetadataResponse:
        return await v2.model_metadata(model_name)

    async def model_ready(model_name: str) -> ModelReadyResponse:
        return await v2.model_ready(model_name)

    async def infer(
        raw_request: Request, raw_response: Response, model_name: str, request_body: InferenceRequest | bytes
    ) -> Response | InferenceResponse:
        return await v2.infer(raw_request, raw_response, model_name, request_body)

    router = APIRouter(prefix="/v2", tags=["V2"])
    router.add_api_route("", v2.metadata, methods=["GET"], response_model=ServerMetadataResponse)
    router.add_api_route("/health/live", v2.live, methods=["GET"], response_model=ServerLiveResponse)
    router.add_api_route("/health/ready", v2.ready, methods=["GET"], response_model=ServerReadyResponse)
    router.add_api_route("/models", v2.models, methods=["GET"], response_model=ListModelsResponse)
    router.add_api_route("/models/{model_name}", model_metadata, methods=["GET"], response_model=ModelMetadataResponse)
    router.add_api_route("/models/{model_name}/ready", model_ready, methods=["GET"], response_model=ModelReadyResponse)
    router.add_api_route("/models/{model_name}/infer", infer, methods=["POST"], response_model=None)
    router.add_api_route(
        "/models/{model_name}/explain",
        explain_v2,
        methods=["POST"],
        response_model=None,
        summary="Explain (a Berg route: the Open Inference Protocol has no explain verb)",
    )
    app.include_router(router)
    _document_model_name(app, model_name)
    return app


TopK = Annotated[
    int,
    Query(
        ge=1,
        description="How many reason codes per event (the features that pushed the score up most); at most the "
        "model's feature count.",
    ),
]


async def _check_model_ready(dataplane: DataPlane, model_name: str) -> None:
    """404 for a model this server does not serve, 503 while it is not ready (as KServe's predict routes)."""
    if not await dataplane.model_ready(model_name, True):
        raise ModelNotReady(model_name)


def _explain_headers(request: Request, top_k: int) -> dict[str, str]:
    """The request's headers for KServe's ``Model.explain``, carrying ``top_k`` (its only other argument is
    the payload)."""
    headers = dict(request.headers.items())
    headers[TOP_K_HEADER] = str(top_k)
    return headers


async def _explain(
    dataplane: DataPlane, model_name: str, body: dict[str, Any] | InferRequest, headers: dict[str, str]
) -> Response:
    # KServe's DataPlane.explain answers the request's own headers as the response's (V1Endpoints.explain
    # sends them back): only the body is kept here.
    response, _ = await dataplane.explain(model_name=model_name, request=body, headers=headers)
    return JSONResponse(response)


def _document_model_name(app: FastAPI, model_name: str) -> None:
    """Say in the OpenAPI document which model this server serves (``{model_name}`` takes one value)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for parameter in operation.get("parameters", []):
                        if parameter.get("name") == "model_name" and parameter.get("in") == "path":
                            parameter["schema"] = {"type": "string", "enum": [model_name], "title": "Model Name"}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when chosen, or by default when installed (it is, with ``uvicorn[standard]``): its transports
    cost a request less CPU than asyncio's; gRPC's asyncio server runs on it too."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise RuntimeError("BERG_SERVING_EVENT_LOOP=uvloop, but uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _http_status_of(code: StatusCode) -> int:
    """The HTTP status class of a gRPC code, for counting: the server's fault or the client's."""
    server_side = {StatusCode.INTERNAL, StatusCode.UNAVAILABLE, StatusCode.UNKNOWN, StatusCode.DATA_LOSS}
    return 500 if code in server_side or code == StatusCode.DEADLINE_EXCEEDED else 400


class _StatusInterceptor(AsyncExceptionToStatusInterceptor):
    """gRPC statuses for KServe's errors: INVALID_ARGUMENT for what the client sent, never INTERNAL.

    Counts each ``ModelInfer`` call in ``berg_serving_requests_total{protocol="grpc"}``.
    """

    def __init__(self, requests: Counter) -> None:
        super().__init__()
        self._requests = requests

    async def intercept(self, method: Any, request_or_iterator: Any, context: Any, method_name: str) -> Any:
        # Failures are counted in handle_exception, where the original error is known.
        response = await super().intercept(method, request_or_iterator, context, method_name)
        if method_name.endswith("/ModelInfer"):
            self._requests.labels("grpc", "ok").inc()
        return response

    async def handle_exception(
        self, ex: Exception, request_or_iterator: Any, context: Any, method_name: str
    ) -> NoReturn:
        status = error_status(ex) if not isinstance(ex, GrpcException) else _http_status_of(ex.status_code)
        if method_name.endswith("/ModelInfer"):
            self._requests.labels("grpc", outcome_of(status)).inc()
        if isinstance(ex, GrpcException):
            await super().handle_exception(ex, request_or_iterator, context, method_name)
        code = _GRPC_CODES.get(status, StatusCode.INTERNAL)
        if status >= 500:
            log.error("gRPC %s failed: %s", method_name, ex, exc_info=status == 500)
        else:
            log.info("refused a gRPC %s (%s): %s", method_name, code.name, ex)
        await context.abort(code, str(ex) if status != 500 else "internal server error; see the server log")
        raise RuntimeError("grpc's context.abort() returned")  # it raises; this tells the type checker


class _NoModelRepository:
    """The gRPC repository extension (model load/unload) is not offered: the registry decides what is served."""

    async def load(self, model_name: str) -> dict[str, Any]:
        raise NotImplementedError("loading models on request is not supported; move the registry alias instead")

    async def unload(self, model_name: str) -> dict[str, Any]:
        raise NotImplementedError("unloading models on request is not supported")


class _QuietUvicorn(uvicorn.Server):
    """Uvicorn without its own signal handlers (the server's stop sequence owns SIGTERM), telling
    ``on_listening`` once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_listening: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._on_listening is not None:
            self._on_listening()


class ServingServer:
    """REST and gRPC over one model, until SIGTERM; see the module docstring for the stop sequence.

    Example:
        >>> server = ServingServer(settings, model, readiness, metrics_registry, use_case.scored.contract)
        >>> server.run()   # blocks; returns after a graceful stop
    """

    def __init__(
        self,
        settings: ServingSettings[Any],
        model: Model,
        readiness: ReadinessChecks,
        registry: CollectorRegistry,
        contract: type[BaseModel],
        *,
        value_rules: Sequence[ValueRule] = (),
        served_registry: CollectorRegistry | None = None,
        sockets: Sequence[socket.socket] = (),
        on_listening: Callable[[], None] | None = None,
    ) -> None:
        """``registry`` holds the request counter; ``/metrics`` serves ``served_registry`` (default: ``registry``).
        ``sockets``: HTTP listeners bound by a parent process (one worker among several; default: bind
        ``settings.web``); ``on_listening`` is called once REST and gRPC accept connections."""
        self._settings = settings
        self._sockets = list(sockets) or None
        self._readiness = readiness
        repository = ModelRepository()
        repository.update(model)
        self._dataplane = ServingDataPlane(repository, readiness)
        self._requests = request_counter(registry)
        app = build_app(
            settings,
            model.name,
            self._dataplane,
            served_registry or registry,
            readiness,
            self._requests,
            contract,
            value_rules,
        )
        self.app: ASGIApp = app
        if settings.v1_route == "direct":
            self.app = V1PredictFront(app, self._dataplane, self._requests, settings.web.max_body_bytes)
        in_flight_budget = max(1, int(settings.grace_period_s - settings.drain_delay_s - 1))
        self._http = _QuietUvicorn(
            uvicorn.Config(
                self.app,
                host=settings.web.host,
                port=settings.web.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=in_flight_budget,
                timeout_keep_alive=65,
            ),
            on_listening,
        )
        self._in_flight_budget = float(in_flight_budget)
        self.stop_requested = asyncio.Event()

    def _grpc_server(self) -> aio.Server:
        server = aio.server(
            interceptors=(_StatusInterceptor(self._requests),),
            options=[
                ("grpc.max_receive_message_length", self._settings.web.max_body_bytes),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(self._dataplane, _NoModelRepository()), server
        )
        server.add_insecure_port(f"{self._settings.grpc.host}:{self._settings.grpc.port}")
        return server

    def run(self, on_stopped: Callable[[float], Awaitable[None]] | None = None) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully.

        Args:
            on_stopped: awaited after the listeners are closed and in-flight requests are done, with
                the seconds left of the grace period (close the prediction log, the stores).
        """
        with asyncio.Runner(loop_factory=_loop_factory(self._settings.event_loop)) as runner:
            runner.run(self.serve(on_stopped))

    async def serve(self, on_stopped: Callable[[float], Awaitable[None]] | None = None) -> None:
        """:meth:`run` inside a running loop."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._request_stop, signum)
        grpc_server = self._grpc_server() if self._settings.grpc.enabled else None
        if grpc_server is not None:
            await grpc_server.start()
        http = asyncio.create_task(self._http.serve(self._sockets), name="http")
        stop = asyncio.create_task(self.stop_requested.wait(), name="stop")
        await asyncio.wait({http, stop}, return_when=asyncio.FIRST_COMPLETED)
        if http.done():
            stop.cancel()
            if grpc_server is not None:
                await grpc_server.stop(None)
            http.result()
            raise RuntimeError("the HTTP server stopped by itself")
        deadline = time.monotonic() + self._settings.grace_period_s
        self._readiness.drain()
        log.info("stopping: not ready from now on; serving for %.1fs more", self._settings.drain_delay_s)
        await asyncio.sleep(self._settings.drain_delay_s)
        log.info("closing the listeners; waiting for the requests in flight")
        self._http.should_exit = True
        stops: list[Awaitable[Any]] = [http]
        if grpc_server is not None:
            stops.append(grpc_server.stop(self._in_flight_budget))
        await asyncio.gather(*stops)
        if on_stopped is not None:
            await on_stopped(max(0.0, deadline - time.monotonic() - 0.5))
        log.info("stopped")

    def _request_stop(self, signum: int) -> None:
        if self.stop_requested.is_set():
            log.warning("received %s again; already stopping", signal.Signals(signum).name)
            return
        log.info("received %s", signal.Signals(signum).name)
        self.stop_requested.set()
