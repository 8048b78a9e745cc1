"""Run the exporter: the HTTP server for ``/metrics``, the reader, and a graceful stop on SIGTERM."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry

from berg.kafka.dead_letter import DeadLetterPublisher
from berg.kafka.undecodable import UndecodableBatches
from berg.observability.health import ReadinessChecks
from berg.problem.card import load_problem_card
from berg.registry import ModelRegistry
from berg.service import StopRequested, producer_once_kafka_answers, retry_until, stop_on_signals
from berg.usecase import UseCase
from berg.web.app import create_app
from berg.web.server import BackgroundServer
from berg_monitoring.exporter import Exporter, open_reader
from berg_monitoring.metrics import MonitoringMetrics, SnapshotCollector
from berg_monitoring.references import ReferenceBook
from berg_monitoring.settings import MonitoringSettings

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(
    settings: MonitoringSettings, use_case: UseCase, *, model_name: str, stop: threading.Event | None = None
) -> None:
    """Export until SIGTERM/SIGINT (or ``stop``), watching the predictions of the registry model ``model_name``.

    Raises:
        RuntimeError: Kafka or the topics could not be reached within ``startup_timeout_s``.
    """
    stop = stop or threading.Event()
    registry = CollectorRegistry()
    readiness = ReadinessChecks()

    stop_on_signals(readiness, stop, "stopping")

    card = load_problem_card(settings.problem_card) if settings.problem_card else use_case.card
    metrics = MonitoringMetrics.register(registry)
    collector = SnapshotCollector(model_name, settings.new_labelled_rows_threshold, currency=card.costs.currency)
    registry.register(collector)
    # Not ready until the reader polls, and only while it keeps doing so; registered before the HTTP server
    # answers, so /readyz says no while Kafka is still being waited for.
    exporters: list[Exporter] = []
    stale_after_s = max(30.0, 3 * settings.poll_timeout_ms / 1000)

    def polling() -> bool:
        last_poll = exporters[0].last_poll if exporters else None
        return last_poll is not None and time.monotonic() - last_poll < stale_after_s

    readiness.add("reader_polling", polling)
    server = BackgroundServer(
        create_app(settings.web, title=settings.service_name, registry=registry, readiness=readiness), settings.web
    )
    server.start()
    producer: Any = None
    consumer: Any = None
    try:
        producer = producer_once_kafka_answers(settings.kafka, settings.startup_timeout_s, stop)
        consumer = retry_until(
            lambda: open_reader(
                settings.kafka,
                [
                    settings.predictions_topic,
                    settings.shadow_predictions_topic,
                    settings.labels_topic or use_case.labels.valid_topic,
                ],
                settings.lookback_s,
                settings.startup_timeout_s,
            ),
            "reader",
            settings.startup_timeout_s,
            stop,
        )
        dead_letters = DeadLetterPublisher(producer, settings.service_name)
        exporter = Exporter(
            settings,
            consumer,
            ReferenceBook(ModelRegistry(settings.registry_uri), model_name, settings.registry_poll_s),
            card,
            collector,
            metrics,
            dead_letters,
            UndecodableBatches.register(registry, dead_letters),
            use_case=use_case,
            model_name=model_name,
        )
        exporters.append(exporter)
        log.info(
            "exporting",
            extra={"model": model_name, "port": server.port, "lookback_s": settings.lookback_s},
        )
        while not stop.is_set():
            exporter.step()
    except StopRequested as stopped:
        log.info("%s", stopped)
    finally:
        readiness.drain()
        if consumer is not None:
            consumer.close()
        if producer is not None:
            producer.close()
        server.stop()
        log.info("stopped")
