"""Who turns feature columns into scores: the local champion, or a predictor across the network.

The transformer hands named feature columns to a :class:`Scorer`. In the fused
shape that is a :class:`LocalScorer` (the registry's champion, in this process);
in KServe's standard shape, a :class:`RemotePredictor` that calls the predictor
server over V1, V2 REST or V2 gRPC. The predictor server itself scores with a
:class:`LocalScorer`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from berg_serving.decisions import DecisionPolicy
from berg_serving.errors import UpstreamError
from berg_serving.explanations import Contributions, Explained
from berg_serving.features import feature_matrix
from berg_serving.predictions import Scores
from berg_serving.predictor_readiness import PredictorReadiness, model_ready_check
from berg_serving.protocol import (
    PredictorResponseError,
    feature_request_v1,
    feature_request_v2,
    read_scores_v1,
    read_scores_v2,
)
from berg_serving.settings import PredictorLinkSettings

if TYPE_CHECKING:
    from berg_serving.champion import Champion, ChampionSlot

__all__ = ["LocalScorer", "ModelUnavailableError", "RemotePredictor", "Scorer"]

Columns = Mapping[str, np.ndarray]


class ModelUnavailableError(RuntimeError):
    """No model version is loaded yet (the registry's alias is unset, or its version cannot be served)."""


class Scorer(Protocol):
    """Scores named feature columns (float64, NaN for missing) with one model version."""

    def ready(self) -> bool:
        """Whether a score can be asked for now."""
        ...

    async def score(self, columns: Columns) -> Scores:
        """Scores and decisions for every row."""
        ...

    async def explain(self, columns: Columns) -> Explained:
        """Scores, decisions and each feature's contribution for every row.

        Raises:
            NotImplementedError: this scorer cannot explain (the model is in another process).
        """
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...


class LocalScorer:
    """The champion of a :class:`~berg_serving.champion.ChampionSlot`, run on a thread pool.

    The champion is read once per call, so a batch is scored, decided and reported
    by one version even when a swap happens meanwhile.

    Args:
        slot: holds the champion (swapped by the watcher).
        policy: decisions from scores and the champion's threshold.
        threads: XGBoost runs here, off the event loop, for batches of more than ``inline_rows``.
        inline_rows: batches of at most this many rows are scored on the event loop: for a row or two the hop
            to a thread and back costs more CPU than the trees (0: always on a thread).
        debug_delay_s: test only: wait this long (asynchronously) before scoring.
    """

    def __init__(
        self,
        slot: ChampionSlot,
        policy: DecisionPolicy,
        threads: int,
        *,
        inline_rows: int = 0,
        debug_delay_s: float = 0.0,
    ) -> None:
        self._slot = slot
        self._policy = policy
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="xgboost")
        self._inline_rows = inline_rows
        self._debug_delay_s = debug_delay_s

    def ready(self) -> bool:
        return self._slot.current is not None

    def champion(self) -> Champion | None:
        """The version that would score a call made now."""
        return self._slot.current

    async def score(self, columns: Columns) -> Scores:
        """Scores from the current champion.

        Raises:
            ModelUnavailableError: nothing is loaded yet.
            berg_serving.features.MissingFeaturesError: the champion needs a column that is not given.
        """
        champion = await self._champion_now()
        if _rows(columns) <= self._inline_rows:
            return self._score(champion, columns)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._score, champion, columns)

    async def explain(self, columns: Columns) -> Explained:
        """Scores from the current champion with each feature's contribution (TreeSHAP), from one version.

        Raises:
            ModelUnavailableError: nothing is loaded yet.
            berg_serving.features.MissingFeaturesError: the champion needs a column that is not given.
        """
        champion = await self._champion_now()
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._explain, champion, columns)

    async def _champion_now(self) -> Champion:
        champion = self._slot.current
        if champion is None:
            raise ModelUnavailableError("no model version is loaded yet")
        if self._debug_delay_s:
            await asyncio.sleep(self._debug_delay_s)
        return champion

    def _score(self, champion: Champion, columns: Columns) -> Scores:
        return self._scores(champion, feature_matrix(columns, champion.features))

    def _explain(self, champion: Champion, columns: Columns) -> Explained:
        matrix = feature_matrix(columns, champion.features)
        per_feature, bias = champion.contributions(matrix)
        return Explained(self._scores(champion, matrix), Contributions(champion.features, per_feature, bias))

    def _scores(self, champion: Champion, matrix: np.ndarray) -> Scores:
        scores = champion.predict(matrix).tolist()
        return Scores(
            model_version=champion.version,
            threshold=champion.threshold,
            scores=scores,
            decisions=self._policy.decide_all(scores, champion.threshold),
        )

    async def close(self) -> None:
        self._executor.shutdown(wait=True)


def _rows(columns: Columns) -> int:
    for column in columns.values():
        return len(column)
    return 0


class RemotePredictor:
    """The predictor server, called with KServe's own clients (``predictor_host``).

    Its answers carry the model version that scored them; a predictor that cannot be
    reached or is not ready is a 503, one that answers nonsense a 502.
    """

    def __init__(self, link: PredictorLinkSettings, model_name: str) -> None:
        self._link = link
        self._model_name = model_name
        self._client: Any = None
        self._readiness: PredictorReadiness | None = None

    def follow_readiness(self, interval_s: float) -> None:
        """From now on, :meth:`ready` is the predictor's model readiness, checked every ``interval_s``."""
        self._readiness = PredictorReadiness(model_ready_check(self._link, self._model_name), interval_s)
        self._readiness.start()

    def ready(self) -> bool:
        """The predictor's readiness when followed (:meth:`follow_readiness`); otherwise assumed."""
        return self._readiness.ready if self._readiness is not None else True

    def _connect(self) -> Any:
        from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig

        if self._link.protocol == "grpc-v2":
            return InferenceGRPCClient(
                url=self._link.host, use_ssl=self._link.use_ssl, timeout=self._link.timeout_s, retries=0
            )
        return InferenceRESTClient(RESTConfig(protocol=self._link.protocol, timeout=self._link.timeout_s, retries=0))

    async def score(self, columns: Columns) -> Scores:
        """Scores from the predictor server.

        Raises:
            UpstreamError: the predictor is unreachable, refused the call or answered nonsense.
        """
        import grpc
        import httpx

        if self._client is None:
            self._client = self._connect()  # inside the event loop: gRPC's aio channel binds to it
        rows = len(next(iter(columns.values())))
        scheme = "https" if self._link.use_ssl else "http"
        try:
            if self._link.protocol == "v1":
                body = await self._client.infer(
                    f"{scheme}://{self._link.host}", feature_request_v1(columns), model_name=self._model_name
                )
                return read_scores_v1(body, rows)
            request = feature_request_v2(columns, self._model_name, str(uuid.uuid4()))
            if self._link.protocol == "v2":
                response = await self._client.infer(
                    f"{scheme}://{self._link.host}", request, model_name=self._model_name
                )
            else:
                response = await self._client.infer(request)
            return read_scores_v2(response, rows)
        except httpx.HTTPStatusError as error:
            status = error.response.status_code
            raise UpstreamError(f"the predictor answered {status}: {error}", unavailable=status == 503) from None
        except httpx.TransportError as error:
            raise UpstreamError(f"the predictor cannot be reached: {error!r}", unavailable=True) from None
        except grpc.aio.AioRpcError as error:
            unavailable = error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            raise UpstreamError(
                f"the predictor answered {error.code().name}: {error.details()}", unavailable=unavailable
            ) from None
        except PredictorResponseError as error:
            raise UpstreamError(f"the predictor's answer is not understood: {error}", unavailable=False) from None

    async def explain(self, columns: Columns) -> Explained:
        """Not offered: the model is in the predictor's process, which has no explain route.

        Raises:
            NotImplementedError: always (a 501).
        """
        raise NotImplementedError("explain needs the model in this process: serve the fused shape to explain")

    async def close(self) -> None:
        if self._readiness is not None:
            self._readiness.stop()
        if self._client is not None:
            await self._client.close()
