"""The transformer's readiness follows its predictor's.

A transformer whose predictor is not ready (no champion yet, draining, gone)
can only answer 503, so it should not receive traffic either: a thread asks the
predictor's model-ready endpoint every few seconds (V1 ``GET /v1/models/<name>``,
V2 ``GET /v2/models/<name>/ready``, or gRPC ``ModelReady``) and the transformer's
readiness reads the last answer. Off the event loop, never blocking a probe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from berg_serving.settings import PredictorLinkSettings

__all__ = ["PredictorReadiness", "model_ready_check"]

log = logging.getLogger(__name__)


def model_ready_check(link: PredictorLinkSettings, model_name: str) -> Callable[[], bool]:
    """A blocking call that says whether the predictor serves ``model_name`` now (False when unreachable)."""
    timeout = min(link.timeout_s, 2.0)
    if link.protocol == "grpc-v2":
        import grpc
        from kserve.protocol.grpc import grpc_predict_v2_pb2, grpc_predict_v2_pb2_grpc

        channel = grpc.secure_channel(link.host, grpc.ssl_channel_credentials()) if link.use_ssl else None
        channel = channel or grpc.insecure_channel(link.host)
        stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)

        def grpc_ready() -> bool:
            try:
                answer = stub.ModelReady(grpc_predict_v2_pb2.ModelReadyRequest(name=model_name), timeout=timeout)
            except grpc.RpcError:
                return False
            return bool(answer.ready)

        return grpc_ready

    import httpx

    scheme = "https" if link.use_ssl else "http"
    path = f"/v1/models/{model_name}" if link.protocol == "v1" else f"/v2/models/{model_name}/ready"
    url = f"{scheme}://{link.host}{path}"

    def http_ready() -> bool:
        try:
            return httpx.get(url, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    return http_ready


class PredictorReadiness:
    """The predictor's readiness as of the last check, refreshed by a daemon thread every ``interval_s``."""

    def __init__(self, check: Callable[[], bool], interval_s: float) -> None:
        self._check = check
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="berg-predictor-readiness", daemon=True)
        self.ready = False

    def start(self) -> None:
        """Check once now, then keep checking in the background."""
        self.ready = self._check()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            ready = self._check()
            if ready != self.ready:
                log.info("the predictor is %s", "ready" if ready else "not ready")
            self.ready = ready

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
