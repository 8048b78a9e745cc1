"""Run the exporter: the HTTP server for ``/metrics``, the reader, and a graceful stop on SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.producer import open_producer
from berg.observability.health import ReadinessChecks
from berg.problem.card import load_problem_card
from berg.registry import ModelRegistry
from berg.web.app import create_app
from berg.web.server import BackgroundServer
from berg_monitoring.exporter import Exporter, open_reader
from berg_monitoring.metrics import MonitoringMetrics, SnapshotCollector
from berg_monitoring.references import ReferenceBook
from berg_monitoring.settings import MonitoringSettings

__all__ = ["run"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def run(settings: MonitoringSettings, stop: threading.Event | None = None) -> None:
    """Export until SIGTERM/SIGINT (or ``stop``).

    Raises:
        RuntimeError: Kafka or the topics could not be reached within ``startup_timeout_s``.
    """
    stop = stop or threading.Event()
    registry = CollectorRegistry()
    readiness = ReadinessChecks()

    def request_stop(signum: int, _: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        readiness.drain()
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    card = load_problem_card(settings.problem_card)
    metrics = MonitoringMetrics.register(registry)
    collector = SnapshotCollector(settings.model_name, settings.new_labelled_rows_threshold)
    registry.register(collector)
    server = BackgroundServer(
        create_app(settings.web, title=settings.service_name, registry=registry, readiness=readiness), settings.web
    )
    server.start()
    producer: Any = None
    consumer: Any = None
    try:
        producer = _retry(lambda: open_producer(settings.kafka), settings.startup_timeout_s)
        consumer = _retry(
            lambda: open_reader(
                settings.kafka,
                [settings.predictions_topic, settings.labels_topic],
                settings.lookback_s,
                settings.startup_timeout_s,
            ),
            settings.startup_timeout_s,
        )
        exporter = Exporter(
            settings,
            consumer,
            ReferenceBook(ModelRegistry(settings.registry_uri), settings.model_name, settings.registry_poll_s),
            card,
            collector,
            metrics,
            DeadLetterPublisher(producer, settings.service_name),
        )
        stale_after_s = max(30.0, 3 * settings.poll_timeout_ms / 1000)
        readiness.add(
            "reader_polling",
            lambda: exporter.last_poll is not None and time.monotonic() - exporter.last_poll < stale_after_s,
        )
        log.info(
            "exporting",
            extra={"model": settings.model_name, "port": server.port, "lookback_s": settings.lookback_s},
        )
        while not stop.is_set():
            exporter.step()
    finally:
        readiness.drain()
        if consumer is not None:
            consumer.close()
        if producer is not None:
            producer.close()
        server.stop()
        log.info("stopped")


def _retry(build: Callable[[], T], timeout_s: float) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return build()
        except KafkaError as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not reach Kafka within {timeout_s:.0f}s: {error}") from error
            log.warning("Kafka not reachable yet (%s); retrying", error)
            time.sleep(1.0)
