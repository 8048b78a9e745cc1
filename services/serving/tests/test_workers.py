"""The supervisor's pure parts (restart budget, exit accounting) and the metrics of several workers.

The workers' metrics are written by real child processes in prometheus_client's multiprocess mode, then read
back through :func:`berg_serving.metrics.workers_registry`, as ``/metrics`` serves them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import mark_process_dead

from berg_serving.metrics import ModelInfoGauge, workers_registry
from berg_serving.workers import RestartBudget, clean_exit, start_failure

pytestmark = pytest.mark.unit


def test_the_restart_budget_allows_limit_deaths_per_window() -> None:
    budget = RestartBudget(limit=3, window_s=10.0)
    assert [budget.allow(now) for now in (0.0, 1.0, 2.0)] == [True, True, True]
    assert not budget.allow(3.0), "a fourth death within 10 s"
    assert budget.allow(13.5), "the deaths at 0 to 3 s are out of the window by then"


def test_the_restart_budget_forgets_deaths_spread_over_time() -> None:
    budget = RestartBudget(limit=1, window_s=60.0)
    assert all(budget.allow(minute * 60.0) for minute in range(10))


def test_a_start_failure_is_the_worker_s_own_line_when_it_gave_one() -> None:
    assert (
        start_failure(7, 1, "cannot serve: the registry lacks the views")
        == "cannot serve: the registry lacks the views"
    )
    line = start_failure(7, -11, None)
    assert line == "a serving worker (pid 7) exited with code -11 before it listened; see its log above"


@pytest.mark.parametrize(
    ("exit_code", "clean"),
    [(0, True), (-signal.SIGTERM, True), (-signal.SIGINT, True), (1, False), (-signal.SIGKILL, False), (None, False)],
)
def test_a_clean_exit_is_a_graceful_stop_or_the_stop_signal_itself(exit_code: int | None, clean: bool) -> None:
    assert clean_exit(exit_code) is clean


def test_the_model_info_gauge_reports_only_the_version_now_served() -> None:
    registry = CollectorRegistry()
    info = ModelInfoGauge(registry)
    info.info({"model": "fraud", "version": "v0001", "threshold": "0.5"})
    info.info({"model": "fraud", "version": "v0002", "threshold": "0.2"})
    value = registry.get_sample_value
    assert value("berg_serving_model_info", {"model": "fraud", "version": "v0002", "threshold": "0.2"}) == 1
    assert value("berg_serving_model_info", {"model": "fraud", "version": "v0001", "threshold": "0.5"}) == 0


_WORKER = textwrap.dedent(
    """
    import os, sys
    from prometheus_client import Counter, CollectorRegistry
    from berg_serving.metrics import ServingMetrics, request_counter

    registry = CollectorRegistry()
    metrics = ServingMetrics.register(registry, multiprocess=True)
    for version in sys.argv[1:]:
        metrics.model.info({"model": "fraud", "version": version, "threshold": "0.5"})
    metrics.in_flight.inc()
    request_counter(registry).labels("v1", "ok").inc(3)
    Counter("library_calls", "A library's metric on the global registry.").inc()
    print(os.getpid())
    """
)


def _worker(metrics_dir: Path, *versions: str) -> int:
    """A process writing serving metrics as a worker does; its pid."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, *versions], env=env, check=True, capture_output=True, text=True
    )
    return int(done.stdout)


def _samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    return [(s.labels, s.value) for family in registry.collect() for s in family.samples if s.name == name]


def test_the_workers_registry_adds_the_workers_up(tmp_path: Path) -> None:
    first = _worker(tmp_path, "v0001", "v0002")
    second = _worker(tmp_path, "v0001")
    registry = workers_registry(str(tmp_path))
    assert _samples(registry, "berg_serving_requests_total") == [({"protocol": "v1", "outcome": "ok"}, 6.0)]
    assert _samples(registry, "berg_serving_requests_in_flight") == [({}, 2.0)]
    info = sorted((labels["pid"], labels["version"]) for labels, value in _samples(registry, "berg_serving_model_info"))
    assert info == sorted([(str(first), "v0002"), (str(second), "v0001")]), "the version swapped out is left out"
    assert not _samples(registry, "library_calls_total"), "only the serving metrics, as one process serves"

    mark_process_dead(first, str(tmp_path))
    assert _samples(registry, "berg_serving_requests_in_flight") == [({}, 1.0)]
    assert [labels["pid"] for labels, _ in _samples(registry, "berg_serving_model_info")] == [str(second)]
    assert _samples(registry, "berg_serving_requests_total") == [({"protocol": "v1", "outcome": "ok"}, 6.0)], (
        "a dead worker's counts stay in the sum"
    )
