"""Assemble a shape from the settings and run it until SIGTERM.

Each shape imports only what it runs: the predictor never imports Feast (each takes
seconds to import). The transformer imports XGBoost for one reason: the shadow
challenger scores in the process that holds the events and the prediction log
(:mod:`berg_serving.shadow`), which in the standard shape is the transformer.
"""

from __future__ import annotations

import gc
import logging
import socket
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from berg.contracts.rules import ValueRule
from berg.features.store_config import FeatureStoreConfig
from berg.observability.health import ReadinessChecks
from berg_serving.decisions import DecisionPolicy
from berg_serving.metrics import ServingMetrics, workers_registry
from berg_serving.models import Predictor, Transformer
from berg_serving.scorers import LocalScorer, RemotePredictor, Scorer
from berg_serving.settings import ServingSettings, Shape

if TYPE_CHECKING:
    from pydantic import BaseModel

    from berg.features.feature_set import FeatureSet
    from berg.usecase import UseCase
    from berg_serving.champion import Champion
    from berg_serving.scoring_request import ScoringContract
    from berg_serving.shadow import ShadowScoring

__all__ = ["Assembly", "assemble", "run"]

log = logging.getLogger(__name__)


Closer = Callable[[float], Awaitable[None]]
"""Releases something after the server stopped, given the seconds left of the grace period."""


@dataclass
class Assembly:
    """A shape's model, and what to close in order once the server has stopped.

    Nothing is served by then, so a closer may block.
    """

    model: Predictor | Transformer
    closers: list[Closer] = field(default_factory=list)

    async def close(self, budget_s: float) -> None:
        for closer in self.closers:
            try:
                await closer(budget_s)
            except Exception:
                log.exception("closing failed")


def _servable(servable_features: Sequence[str] | None) -> Callable[[Champion], None] | None:
    """Refuses a version needing features the transformer does not make (None: the predictor, handed its features)."""
    if servable_features is None:
        return None
    from berg_serving.champion import ChampionError

    def check(champion: Champion) -> None:
        missing = sorted(set(champion.features) - set(servable_features))
        if missing:
            raise ChampionError(f"{champion.version} needs features the transformer does not make: {missing}")

    return check


def _champion_scorer(
    settings: ServingSettings[Any], model_name: str, metrics: ServingMetrics, *, servable_features: Sequence[str] | None
) -> tuple[LocalScorer, Closer]:
    """The champion of ``model_name`` on a thread pool, followed by a watcher; loads the first version now.

    ``servable_features``: what the fused server's transformer makes (a champion needing more is refused);
    None for the predictor shape, which is handed its features."""
    from berg.registry import ModelRegistry
    from berg_serving.champion import ChampionSlot, ChampionWatcher

    slot = ChampionSlot()
    watcher = ChampionWatcher(
        ModelRegistry(settings.registry_uri),
        model_name,
        settings.alias,
        slot,
        settings.poll_interval_s,
        metrics.champion_watch,
        check=_servable(servable_features),
    )
    watcher.poll()  # the first load before the server listens (readiness waits for it otherwise)
    watcher.start()
    scorer = LocalScorer(
        slot,
        DecisionPolicy(settings.decline_at),
        settings.predict_threads,
        inline_rows=settings.predict_inline_rows,
        debug_delay_s=settings.debug_delay_s,
    )

    async def close(_: float) -> None:
        watcher.stop()
        await scorer.close()

    return scorer, close


def _shadow_scoring(
    settings: ServingSettings[Any],
    model_name: str,
    metrics: ServingMetrics,
    *,
    share: float,
    servable_features: Sequence[str],
    key: str,
) -> tuple[ShadowScoring, Closer]:
    """The version the ``shadow`` alias names (none while unset), followed by its own watcher, and the thread that
    scores the sampled events with it; the same feature check as the champion's."""
    from berg.kafka.producer import open_producer
    from berg.registry import ModelRegistry
    from berg_serving.champion import ChampionSlot, ChampionWatcher
    from berg_serving.shadow import ShadowScoring

    slot = ChampionSlot()
    watcher = ChampionWatcher(
        ModelRegistry(settings.registry_uri),
        model_name,
        settings.shadow.alias,
        slot,
        settings.poll_interval_s,
        metrics.shadow_watch,
        check=_servable(servable_features),
        empty_when_unset=True,
    )
    watcher.poll()
    watcher.start()
    shadow = ShadowScoring(
        slot,
        DecisionPolicy(settings.decline_at),
        lambda: open_producer(settings.kafka, linger_ms=20),
        settings.shadow.topic,
        settings.shadow.capacity,
        share=share,
        metrics=metrics,
        key=key,
    )
    shadow.start()

    async def close(budget_s: float) -> None:
        watcher.stop()
        shadow.close(min(settings.shadow.close_timeout_s, budget_s))

    return shadow, close


def assemble(
    settings: ServingSettings[Any],
    shape: Shape,
    metrics: ServingMetrics,
    feature_store: FeatureStoreConfig,
    value_rules: Sequence[ValueRule],
    features: FeatureSet,
    request: ScoringContract[BaseModel],
    *,
    model_name: str,
    prediction_key: str,
    shadow_share: float = 1.0,
) -> Assembly:
    """Build the model of ``shape`` serving the registry model ``model_name`` (blocking: loads the champion, opens
        Feast, warms both up); the transformer parses the use case's scored events with ``request``, refuses those
        that break ``value_rules`` (the scored stream's, validation's own), assembles the use case's ``features`` and
        logs each prediction keyed by the event's ``prediction_key`` field (the scored stream's key). Beside the log,
    the shadow (when its alias is set) scores ``shadow_share`` of the events; the predictor shape has neither."""
    if shape == "predictor":
        champion, close_champion = _champion_scorer(settings, model_name, metrics, servable_features=None)
        predictor = Predictor(model_name, champion, metrics, max_batch=settings.max_batch)
        return Assembly(predictor, [close_champion])

    from berg.features.store import open_store
    from berg.kafka.producer import open_producer
    from berg_serving.features import FeatureAssembler
    from berg_serving.online import FeastOnlineFeatures, OnlinePlanError
    from berg_serving.prediction_log import PredictionLog

    assembler = FeatureAssembler(features)
    closers: list[Closer] = []
    scorer: Scorer
    if shape == "transformer":
        remote = RemotePredictor(settings.predictor, model_name)
        remote.follow_readiness(settings.poll_interval_s)
        scorer = remote
        closers.append(lambda _: remote.close())
    else:
        scorer, close_champion = _champion_scorer(settings, model_name, metrics, servable_features=assembler.servable)
        closers.append(close_champion)

    try:
        online = FeastOnlineFeatures(open_store(feature_store), assembler.online_reads, settings.lookup_threads)
    except OnlinePlanError as error:
        raise SystemExit(f"cannot serve: {error}") from None
    online.warm_up(assembler.warm_up_rows())
    prediction_log = None
    if settings.prediction_log.enabled:
        prediction_log = PredictionLog(
            lambda: open_producer(settings.kafka, linger_ms=20),
            settings.prediction_log.topic,
            settings.prediction_log.capacity,
            metrics,
            key=prediction_key,
        )
        prediction_log.start()

    shadow = None
    if settings.shadow.enabled:
        shadow, close_shadow = _shadow_scoring(
            settings,
            model_name,
            metrics,
            share=shadow_share,
            servable_features=assembler.servable,
            key=prediction_key,
        )
        closers.append(close_shadow)

    async def close_log(budget_s: float) -> None:
        if prediction_log is not None:
            prediction_log.close(min(settings.prediction_log.close_timeout_s, budget_s))

    async def close_features(_: float) -> None:
        await online.close()

    closers.extend([close_log, close_features])
    transformer = Transformer(
        model_name,
        request,
        online,
        assembler,
        scorer,
        prediction_log,
        metrics,
        max_batch=settings.max_batch,
        rules=value_rules,
        shadow=shadow,
    )
    return Assembly(transformer, closers)


def run(
    settings: ServingSettings[Any],
    shape: Shape,
    feature_store: FeatureStoreConfig,
    use_case: UseCase,
    *,
    model_name: str,
    shadow_share: float = 1.0,
    sockets: Sequence[socket.socket] = (),
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Serve ``shape`` until SIGTERM or SIGINT, then stop within the grace period (``feature_store``: where
    the fused and transformer shapes read the use case's online features; every scored event must follow the
    contract of the use case's scored stream and pass its value rules; ``model_name``: the registry model
    served; ``shadow_share``: of scored events, the share the shadow scores, from the card's rollout).

    One worker of several (``settings.workers`` > 1, started by :mod:`berg_serving.workers`) serves HTTP on the
    supervisor's ``sockets``, keeps its metrics in the shared multiprocess files and calls ``on_listening`` once
    it accepts connections."""
    from berg_serving.scoring_request import ScoringContract
    from berg_serving.server import ServingServer

    # KServe's V1 handler answers with FastAPI's ORJSONResponse, which FastAPI now deprecates: not ours to fix.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    registry = CollectorRegistry()
    one_of_workers = settings.workers > 1
    metrics = ServingMetrics.register(registry, multiprocess=one_of_workers)
    readiness = ReadinessChecks()
    value_rules = settings.rules.value_rules(use_case.scored.name)
    request = ScoringContract(use_case.scored.contract)
    assembly = assemble(
        settings,
        shape,
        metrics,
        feature_store,
        value_rules,
        use_case.features,
        request,
        model_name=model_name,
        prediction_key=use_case.scored.key,
        shadow_share=shadow_share,
    )
    assembly.model.load()
    # Everything built so far (Feast, KServe, the champion, the app: about 280,000 objects) lives as long as the
    # process: out of the collector's reach, a full collection walks only what requests leave behind (each walked
    # the whole heap: 100 to 300 ms on a loaded 2-core machine, the p99 spikes at 20 in flight).
    gc.collect()
    gc.freeze()
    readiness.add("model", assembly.model.is_ready)
    server = ServingServer(
        settings,
        assembly.model,
        readiness,
        registry,
        request.contract,
        value_rules=value_rules,
        served_registry=workers_registry() if one_of_workers else None,
        sockets=sockets,
        on_listening=on_listening,
    )
    log.info(
        "serving",
        extra={
            "shape": shape,
            "model": model_name,
            "http_port": settings.web.port,
            "grpc_port": settings.grpc.port if settings.grpc.enabled else None,
        },
    )
    server.run(on_stopped=assembly.close)
