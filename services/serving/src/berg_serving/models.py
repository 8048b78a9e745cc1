"""The KServe models: the predictor, and the transformer (standard or fused).

Each overrides KServe's ``preprocess``, ``predict`` and ``postprocess`` (and wraps
``__call__`` for the in-flight gauge and the total latency). The stages hand
typed batches to each other, not wire payloads; the wire formats are in
:mod:`berg_serving.protocol`.

- :class:`Predictor` (``--shape predictor``): named feature columns in, the
  champion's scores and decisions out, with the version that scored them.
- :class:`Transformer`: the use case's events in; ``preprocess`` validates them against its
  scored contract (:class:`~berg_serving.scoring_request.ScoringContract`),
  reads Feast (:mod:`berg_serving.online`) and assembles the use case's features, ``predict``
  asks its :class:`~berg_serving.scorers.Scorer` (the predictor server in the standard
  shape, the champion in this process in the fused shape), ``postprocess`` answers and
  hands every prediction to the log, and the sampled ones to the shadow (:mod:`berg_serving.shadow`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

import numpy as np
from kserve import InferRequest, InferResponse, Model
from kserve.errors import InvalidInput, ModelNotReady
from kserve.model import InferenceVerb
from pydantic import BaseModel
from typing_extensions import override

from berg.contracts.rules import ValueRule
from berg_serving.explanations import Explained, TopKError, explanation_response, top_k_of
from berg_serving.features import FeatureAssembler, FeatureFrame, MissingFeaturesError
from berg_serving.json_body import load_json
from berg_serving.metrics import ServingMetrics
from berg_serving.online import OnlineFeatureSource
from berg_serving.prediction_log import PredictionLog
from berg_serving.predictions import ScoredEvent, Scores, score_events
from berg_serving.protocol import (
    PREDICTOR_OUTPUTS,
    SCORING_OUTPUTS,
    feature_columns_v1,
    feature_columns_v2,
    scored_response_v1,
    scored_response_v2,
    scores_response_v1,
    scores_response_v2,
    tensor_metadata,
)
from berg_serving.scorers import LocalScorer, ModelUnavailableError, Scorer
from berg_serving.scoring_request import RequestError, ScoringContract
from berg_serving.shadow import ShadowScoring

__all__ = ["Predictor", "Transformer"]

log = logging.getLogger(__name__)

Payload: TypeAlias = "dict[str, Any] | InferRequest | bytes"
"""What KServe hands ``preprocess``: parsed JSON or raw bytes (V1), an ``InferRequest`` (V2, REST or gRPC)."""


def _json_body(payload: object) -> object:
    """A V1 body: KServe hands over parsed JSON, or the raw bytes for a JSON type it does not list
    (``application/json; charset=utf-8``).

    Raises:
        RequestError: the bytes are not standard JSON.
    """
    if isinstance(payload, bytes | bytearray):
        return load_json(bytes(payload))
    return payload


class _ScoringModel(Model):  # type: ignore[misc]  # kserve is untyped
    """What both models share: a scorer that says when they are ready, the in-flight gauge, the total time."""

    def __init__(self, name: str, scorer: Scorer, metrics: ServingMetrics, *, max_batch: int) -> None:
        super().__init__(name)
        self._scorer = scorer
        self._metrics = metrics
        self._max_batch = max_batch

    @override
    async def __call__(
        self, body: Any, headers: dict[str, str] | None = None, verb: InferenceVerb = InferenceVerb.PREDICT
    ) -> Any:
        with self._metrics.in_flight.track_inprogress(), self._metrics.latency.labels("total").time():
            return await super().__call__(body, headers, verb)

    async def predict_direct(self, body: Any, headers: dict[str, str]) -> tuple[Any, dict[str, str]]:
        """The predict verb as KServe's ``Model.__call__`` runs it (preprocess, predict, postprocess), without its
        own timers and hops: what the direct V1 route calls (:mod:`berg_serving.server`). Returns the response
        and its headers, as ``__call__`` does."""
        with self._metrics.in_flight.track_inprogress(), self._metrics.latency.labels("total").time():
            payload = await self.preprocess(body, headers)
            result = await self.predict(payload, headers)
            return await self.postprocess(result, headers), {}

    def is_ready(self) -> bool:
        """Whether requests can be served now: a model is loaded, or a predictor is configured."""
        return self._scorer.ready()

    @override
    def load(self) -> bool:
        # The champion is loaded by its watcher; KServe calls this again when the model is not ready,
        # on the event loop, so it must not do I/O.
        self.ready = self.is_ready()
        return bool(self.ready)

    @override
    async def healthy(self) -> bool:
        # KServe's model readiness (the V1 and V2 model-ready endpoints, and the inference routes' gate).
        return self.is_ready()

    @override
    def stop(self) -> None:
        self.ready = False


@dataclass(frozen=True)
class _FeatureBatch:
    """The predictor's parsed request."""

    columns: dict[str, np.ndarray]
    request: InferRequest | None
    """The V2 request (None for V1): its id and requested outputs shape the response."""


@dataclass(frozen=True)
class _ScoredBatch:
    scores: Scores
    request: InferRequest | None


class Predictor(_ScoringModel):
    """The predictor server's model: feature columns in, scores of the current champion out.

    Args:
        name: the endpoint's model name.
        scorer: the champion on its thread pool.
        metrics: latency, scores and decisions.
        max_batch: most rows per request.
    """

    def __init__(self, name: str, scorer: LocalScorer, metrics: ServingMetrics, *, max_batch: int) -> None:
        super().__init__(name, scorer, metrics, max_batch=max_batch)
        self._champion = scorer

    @override
    async def preprocess(self, payload: Payload, headers: dict[str, str] | None = None) -> _FeatureBatch:
        try:
            if isinstance(payload, InferRequest):
                return _FeatureBatch(feature_columns_v2(payload.inputs, max_batch=self._max_batch), payload)
            return _FeatureBatch(feature_columns_v1(_json_body(payload), max_batch=self._max_batch), None)
        except RequestError as error:
            raise InvalidInput(str(error)) from None

    @override
    async def predict(
        self, payload: _FeatureBatch, headers: dict[str, str] | None = None, response_headers: Any = None
    ) -> _ScoredBatch:
        with self._metrics.latency.labels("predict").time():
            try:
                scores = await self._scorer.score(payload.columns)
            except ModelUnavailableError as error:
                raise ModelNotReady(self.name, str(error)) from None
            except MissingFeaturesError as error:
                raise InvalidInput(str(error)) from None
        _observe(self._metrics, scores)
        return _ScoredBatch(scores, payload.request)

    @override
    async def postprocess(
        self, result: _ScoredBatch, headers: dict[str, str] | None = None, response_headers: Any = None
    ) -> dict[str, Any] | InferResponse:
        if result.request is None:
            return scores_response_v1(result.scores, self.name)
        return scores_response_v2(result.scores, self.name, result.request)

    @override
    def get_input_types(self) -> list[dict[str, Any]]:
        champion = self._champion.champion()
        features = champion.features if champion is not None else ()
        return tensor_metadata(dict.fromkeys(features, "FP32"))

    @override
    def get_output_types(self) -> list[dict[str, Any]]:
        return tensor_metadata(PREDICTOR_OUTPUTS)


@dataclass(frozen=True)
class _EventBatch:
    events: list[BaseModel]
    frame: FeatureFrame
    request: InferRequest | None


@dataclass(frozen=True)
class _ScoredEvents:
    batch: _EventBatch
    scores: Scores


@dataclass(frozen=True)
class _ExplainedEvents:
    batch: _EventBatch
    explained: Explained
    top_k: int


class Transformer(_ScoringModel):
    """Events in, decisions out: validation, Feast, on-demand features, the scorer, the log.

    Args:
        name: the endpoint's model name.
        request: the scoring request of the use case's scored contract.
        features: the online store (:class:`~berg_serving.online.FeastOnlineFeatures`).
        assembler: the use case's feature vectors from the online rows.
        scorer: the predictor server (standard shape) or the local champion (fused shape).
        prediction_log: where every prediction goes (None: not logged).
        metrics: latency per stage, scores, decisions, default features.
        max_batch: most events per request.
        rules: the value rules every event must pass (validation's own, for the scored stream).
        clock: the server's clock, read once per request: event times may not be later than it
            plus the allowed skew.
        shadow: where the scored events go for the shadow challenger to score too, after the answer is built
            (None: no shadow in this process).
    """

    def __init__(
        self,
        name: str,
        request: ScoringContract[BaseModel],
        features: OnlineFeatureSource,
        assembler: FeatureAssembler,
        scorer: Scorer,
        prediction_log: PredictionLog | None,
        metrics: ServingMetrics,
        *,
        max_batch: int,
        rules: Sequence[ValueRule],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        shadow: ShadowScoring | None = None,
    ) -> None:
        super().__init__(name, scorer, metrics, max_batch=max_batch)
        self._shadow = shadow
        self._request = request
        self._features = features
        self._assembler = assembler
        self._prediction_log = prediction_log
        self._rules = rules
        self._clock = clock

    @override
    async def preprocess(self, payload: Payload, headers: dict[str, str] | None = None) -> _EventBatch:
        with self._metrics.latency.labels("lookup").time():
            try:
                now = self._clock()
                if isinstance(payload, InferRequest):
                    events = self._request.parse_v2(
                        payload.inputs, max_batch=self._max_batch, rules=self._rules, now=now
                    )
                    request: InferRequest | None = payload
                else:
                    body = _json_body(payload)
                    events = self._request.parse_v1(body, max_batch=self._max_batch, rules=self._rules, now=now)
                    request = None
            except RequestError as error:
                raise InvalidInput(str(error)) from None
            online = await self._features.lookup(self._assembler.entity_rows(events))
            frame = self._assembler.assemble(events, online)
        return _EventBatch(events, frame, request)

    @override
    async def predict(
        self, payload: _EventBatch, headers: dict[str, str] | None = None, response_headers: Any = None
    ) -> _ScoredEvents:
        with self._metrics.latency.labels("predict").time():
            try:
                scores = await self._scorer.score(payload.frame.columns)
            except ModelUnavailableError as error:
                raise ModelNotReady(self.name, str(error)) from None
        return _ScoredEvents(payload, scores)

    @override
    async def explain(self, payload: _EventBatch, headers: dict[str, str] | None = None) -> _ExplainedEvents:
        """KServe's explain verb: the same features as :meth:`predict`, scored with each feature's contribution.

        Nothing is logged: an explanation is a question about a decision, not a new one.
        """
        try:
            top_k = top_k_of(headers)
        except TopKError as error:
            raise InvalidInput(str(error)) from None
        with self._metrics.latency.labels("explain").time():
            try:
                explained = await self._scorer.explain(payload.frame.columns)
            except ModelUnavailableError as error:
                raise ModelNotReady(self.name, str(error)) from None
        return _ExplainedEvents(payload, explained, top_k)

    @override
    async def postprocess(
        self,
        result: _ScoredEvents | _ExplainedEvents,
        headers: dict[str, str] | None = None,
        response_headers: Any = None,
    ) -> dict[str, Any] | InferResponse:
        if isinstance(result, _ExplainedEvents):
            return self._explanation(result)
        batch = result.batch
        scored = score_events(
            batch.events,
            batch.frame,
            result.scores,
            model_name=self.name,
            served_at=datetime.now(UTC),
            entity_keys=self._assembler.entity_keys,
        )
        _observe(self._metrics, result.scores)
        for entity, known in batch.frame.known.items():
            self._metrics.default_features.labels(entity).inc(len(known) - int(np.count_nonzero(known)))
        if self._prediction_log is not None:
            self._prediction_log.offer(scored)
        if self._shadow is not None:
            self._shadow.offer(scored)  # queued, never waited for: the answer below is the champion's alone
        return _respond(scored, self.name, batch.request)

    def _explanation(self, result: _ExplainedEvents) -> dict[str, Any]:
        batch = result.batch
        try:
            response = explanation_response(
                result.explained,
                batch.frame.columns,
                [str(getattr(event, "event_id")) for event in batch.events],  # noqa: B009  # every contract has it
                model_name=self.name,
                top_k=result.top_k,
            )
        except TopKError as error:
            raise InvalidInput(str(error)) from None
        if batch.request is not None:
            response["id"] = batch.request.id
        return response

    @override
    def get_input_types(self) -> list[dict[str, Any]]:
        return tensor_metadata(self._request.tensors)

    @override
    def get_output_types(self) -> list[dict[str, Any]]:
        return tensor_metadata(SCORING_OUTPUTS)


def _respond(
    scored: Sequence[ScoredEvent], model_name: str, request: InferRequest | None
) -> dict[str, Any] | InferResponse:
    if request is None:
        return scored_response_v1(scored, model_name)
    return scored_response_v2(scored, model_name, request)


def _observe(metrics: ServingMetrics, scores: Scores) -> None:
    for score, decision in zip(scores.scores, scores.decisions, strict=True):
        metrics.scores.observe(score)
        metrics.predictions.labels(decision).inc()
