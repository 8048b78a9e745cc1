"""The runtime every Kafka-consuming Berg service shares.

A service supplies its settings, its topics and a handler; this module does
the rest the same way for all of them: JSON logs, a metrics registry, the HTTP
server for ``/healthz``, ``/readyz`` and ``/metrics``, the consumer loop with
its commit discipline, and a graceful stop on SIGTERM (readiness turns 503
first, the batch in hand finishes and is committed, the group is left).

Example (a service's ``__main__``):
    >>> def main() -> None:
    ...     settings = load_settings_or_exit(IngestionSettings)
    ...     run_consumer_service(settings, topics=list(use_case.raw_topics), build_handler=build)
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter
from pydantic import Field, model_validator

from berg.kafka.consumer import BatchHandler, ConsumerLoop, ConsumerMetrics, RebalanceHooks, open_consumer
from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.producer import open_producer
from berg.kafka.undecodable import UndecodableBatches
from berg.observability.health import ReadinessChecks
from berg.observability.logging import configure_logging
from berg.settings import KafkaSettings, ServiceSettings
from berg.web.app import WebSettings, create_app
from berg.web.server import BackgroundServer

__all__ = [
    "STARTUP_ATTEMPT_MS",
    "ConsumerServiceSettings",
    "ServiceContext",
    "StopRequested",
    "producer_once_kafka_answers",
    "retry_until",
    "run_consumer_service",
    "stop_on_signals",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class ConsumerServiceSettings(ServiceSettings):
    """Settings every consuming service has; a service subclasses it with its own prefix."""

    group_id: str = Field(default="berg", min_length=1, max_length=200)
    """Consumer group; instances with the same group share the partitions."""
    web: WebSettings = WebSettings()
    batch_max_records: int = Field(default=500, ge=1, le=100_000)
    """Most records handed to the handler at once (one micro-batch)."""
    batch_max_wait_ms: int = Field(default=500, ge=1, le=60_000)
    """A micro-batch is handed over at the latest this long after its first record."""
    poll_timeout_ms: int = Field(default=500, ge=1, le=60_000)
    """How long one poll waits for records."""
    startup_timeout_s: float = Field(default=120.0, gt=0)
    """How long to keep trying to reach Kafka at start-up before giving up."""
    fault_crash_before_commit: float = Field(default=0.0, ge=0.0, le=1.0)
    """Fault injection for crash tests: the chance that the process kills itself
    (SIGKILL) after a batch is in its sinks and before its offsets are committed.
    Refused outside development."""

    @model_validator(mode="after")
    def _no_faults_in_production(self) -> ConsumerServiceSettings:
        if self.environment != "development" and self.fault_crash_before_commit > 0:
            raise ValueError("fault_crash_before_commit is a test setting; it must be 0 outside development")
        return self


@dataclass(frozen=True)
class ServiceContext:
    """What a handler is built from: settings, the producer, the DLQ publisher, the metrics registry."""

    settings: ConsumerServiceSettings
    producer: Any
    dead_letters: DeadLetterPublisher
    registry: CollectorRegistry
    readiness: ReadinessChecks
    rebalance: RebalanceHooks = field(default_factory=RebalanceHooks)
    """Register here to hear of partitions assigned and revoked (stateful handlers)."""
    shutdown_hooks: list[Callable[[], None]] = field(default_factory=list)
    """Called in order after the last batch is committed (flush a report, close a file)."""

    def on_shutdown(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` at shutdown, after the consumer loop has stopped."""
        self.shutdown_hooks.append(hook)


def stop_on_signals(readiness: ReadinessChecks, stop: threading.Event, what_next: str) -> None:
    """On SIGTERM or SIGINT: readiness turns 503 first, then ``stop`` is set (main thread only)."""

    def request_stop(signum: int, _: FrameType | None) -> None:
        log.info("received %s; %s", signal.Signals(signum).name, what_next)
        readiness.drain()
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)


STARTUP_ATTEMPT_MS = 5_000
"""How long one start-up attempt waits for a first broker: a stop request is looked at between attempts, so a
pod told to stop while Kafka is away exits within this (and well within its grace period)."""


class StopRequested(Exception):
    """The service was asked to stop (SIGTERM) while it still waited for Kafka: nothing to drain, exit cleanly."""


def retry_until(build: Callable[[], T], what: str, timeout_s: float, stop: threading.Event | None = None) -> T:
    """``build()`` until Kafka answers, for at most ``timeout_s`` (a service may start before its broker).

    Raises:
        RuntimeError: Kafka did not answer in time; the message names ``what`` was being built.
        StopRequested: ``stop`` was set while waiting: a pod told to stop must not sit out its grace period
            retrying a broker that is not there.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return build()
        except KafkaError as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not reach Kafka for the {what} within {timeout_s:.0f}s: {error}") from error
            log.warning("Kafka not reachable yet for the %s (%s); retrying", what, error)
            if stop is None:
                time.sleep(1.0)
            elif stop.wait(1.0):
                raise StopRequested(f"asked to stop while waiting for Kafka for the {what}") from error


def producer_once_kafka_answers(kafka: KafkaSettings, timeout_s: float, stop: threading.Event) -> Any:
    """A service's producer at start-up: retried until Kafka answers (``retry_until``), one short attempt at a
    time so a stop request is seen.

    Raises:
        RuntimeError: Kafka did not answer within ``timeout_s``.
        StopRequested: ``stop`` was set first.
    """
    return retry_until(
        lambda: open_producer(kafka, bootstrap_timeout_ms=STARTUP_ATTEMPT_MS), "producer", timeout_s, stop
    )


def _crash_before_commit(probability: float) -> Callable[[], None] | None:
    if probability <= 0:
        return None
    chance = random.Random()  # noqa: S311 -- fault injection, not security

    def maybe_crash() -> None:
        if chance.random() < probability:
            log.warning("fault injection: killing this process before the commit")
            os.kill(os.getpid(), signal.SIGKILL)

    return maybe_crash


def run_consumer_service(
    settings: ConsumerServiceSettings,
    *,
    topics: Sequence[str],
    build_handler: Callable[[ServiceContext], BatchHandler],
    stop: threading.Event | None = None,
) -> None:
    """Run a consuming service until SIGTERM/SIGINT (or ``stop``), then shut down cleanly.

    Raises:
        RuntimeError: Kafka could not be reached within ``startup_timeout_s``.
    """
    configure_logging(settings.logging, settings.service_name)
    stop = stop or threading.Event()
    registry = CollectorRegistry()
    readiness = ReadinessChecks()

    stop_on_signals(readiness, stop, "finishing the batch in hand")
    # Not ready until the loop polls Kafka, and only while it keeps doing so; registered before the HTTP
    # server answers, so /readyz says no while the broker is still being waited for.
    running: list[ConsumerLoop] = []
    stale_after_s = max(30.0, 3 * (settings.poll_timeout_ms + settings.batch_max_wait_ms) / 1000)

    def polling() -> bool:
        since = running[0].seconds_since_poll() if running else None
        return since is not None and since < stale_after_s

    readiness.add("consumer_polling", polling)

    server = BackgroundServer(
        create_app(settings.web, title=settings.service_name, registry=registry, readiness=readiness), settings.web
    )
    server.start()
    log.info("serving health and metrics", extra={"port": server.port})
    try:
        producer = producer_once_kafka_answers(settings.kafka, settings.startup_timeout_s, stop)
    except StopRequested as stopped:
        server.stop()
        log.info("stopped: %s", stopped)
        return
    dead_lettered = Counter(
        "berg_dead_letters", "Records sent to the dead-letter topic, by reason.", ["reason"], registry=registry
    )
    context = ServiceContext(
        settings=settings,
        producer=producer,
        dead_letters=DeadLetterPublisher(
            producer, settings.service_name, on_published=lambda reason: dead_lettered.labels(reason).inc()
        ),
        registry=registry,
        readiness=readiness,
    )
    handler = build_handler(context)
    # The consumer joins the group after the handler exists, so the handler hears of its first assignment.
    try:
        consumer = retry_until(
            lambda: open_consumer(
                settings.kafka,
                topics,
                settings.group_id,
                max_poll_records=settings.batch_max_records,
                rebalance_hooks=context.rebalance,
            ),
            "consumer",
            settings.startup_timeout_s,
            stop,
        )
    except StopRequested as stopped:
        producer.close()
        server.stop()
        log.info("stopped: %s", stopped)
        return
    loop = ConsumerLoop(
        consumer,
        handler,
        metrics=ConsumerMetrics.register(registry),
        poll_timeout_ms=settings.poll_timeout_ms,
        batch_max_records=settings.batch_max_records,
        batch_max_wait_ms=settings.batch_max_wait_ms,
        before_commit=_crash_before_commit(settings.fault_crash_before_commit),
        undecodable=UndecodableBatches.register(registry, context.dead_letters),
    )
    running.append(loop)
    log.info("consuming", extra={"topics": list(topics), "group": settings.group_id})
    try:
        loop.run(stop)
    finally:
        readiness.drain()
        loop.close()
        for hook in context.shutdown_hooks:
            try:
                hook()
            except Exception:
                log.exception("shutdown hook failed")
        producer.close()
        server.stop()
        log.info("stopped")
