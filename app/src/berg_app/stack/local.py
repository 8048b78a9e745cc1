"""``berg up``/``down``/``status`` as a library: the local stack under one state directory.

``up`` is idempotent: on a stack already up it starts whatever is not running,
in dependency order (Kafka, Prometheus and Alertmanager, then the topics, then
the Berg services), and waits for every component to be healthy again.
The CLI adds the terminal output; tests drive the same class with their own
state directory and free ports.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial

from berg.kafka.topics import ensure_topics, topic_specs
from berg.settings import KafkaSettings
from berg.usecase import UseCase, UseCaseError, resolve_use_case
from berg_app.stack import kafka
from berg_app.stack.layout import StateLayout
from berg_app.stack.monitoring_config import (
    alertmanager_config,
    ensure_controller_token,
    install_alert_rules,
    prometheus_config,
    register_scrape_target,
    write_yaml,
)
from berg_app.stack.probes import INFRASTRUCTURE, Probe, ProbeResult, http_live, http_ready, port_open, stack_probes
from berg_app.stack.services import service_programs, service_specs
from berg_app.stack.settings import StackSettings
from berg_app.stack.supervisor import ProcessInfo, Program, Supervisor, SupervisorError

__all__ = ["ComponentStatus", "LocalStack", "StackError", "UpOutcome"]

_FAILED_STATES = frozenset({"FATAL", "EXITED", "STOPPED", "UNKNOWN"})
_STARTABLE_STATES = frozenset({"FATAL", "EXITED", "STOPPED"})
"""supervisord states a program leaves only when asked to start (STARTING and BACKOFF are on their way up)."""
_LOG_TAIL_LINES = 20


class StackError(Exception):
    """The stack could not be brought up or down; the message says what to do next."""


@dataclass(frozen=True)
class ComponentStatus:
    """One component as ``berg status`` shows it."""

    name: str
    process_state: str
    pid: int
    healthy: bool
    detail: str
    log_file: str


@dataclass(frozen=True)
class UpOutcome:
    """What one ``berg up`` did."""

    fresh: bool
    """True: the stack was down and this call started it; False: it was up and this call healed it."""
    started: list[str]
    """Components this call started: all of them on a fresh start, those that were not running on a heal."""
    created_topics: list[str]
    statuses: list[ComponentStatus]
    """Every component at the end, all healthy."""


def tail(path: str, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file (empty when there is none)."""
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


class LocalStack:
    """Kafka, Prometheus, Alertmanager and the enabled Berg services, supervised under one state directory."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.layout = StateLayout.at(settings.state_dir)
        self.supervisor = Supervisor(self.layout)

    @property
    def kafka_settings(self) -> KafkaSettings:
        """How a client reaches this stack's broker."""
        return KafkaSettings(bootstrap_servers=self.settings.kafka_bootstrap, client_id="berg-cli")

    def is_up(self) -> bool:
        """Whether this state directory's supervisor is running."""
        return self.supervisor.is_running()

    def busy_ports(self) -> dict[str, int]:
        """Ports of the table that something else already listens on."""
        return {
            name: port for name, port in self.settings.ports.as_dict().items() if port_open(self.settings.host, port)
        }

    def prepare(self, on_step: Callable[[str], None] = lambda _: None) -> list[Program]:
        """Fetch Kafka, format its storage, write every config; return the programs to supervise.

        Raises:
            StackError: a port of the table is taken, a binary is missing, or
                Kafka could not be prepared.
        """
        busy = self.busy_ports()
        if busy:
            listed = ", ".join(f"{name} {port}" for name, port in busy.items())
            raise StackError(
                f"ports already in use: {listed}. Stop what holds them, or set BERG_PORTS__<NAME> "
                "(e.g. BERG_PORTS__KAFKA=19092)"
            )
        self.layout.create()
        settings, layout = self.settings, self.layout
        binaries = {name: shutil.which(name) for name in (settings.prometheus_bin, settings.alertmanager_bin)}
        missing = [name for name, path in binaries.items() if path is None]
        if missing:
            raise StackError(f"not on PATH: {', '.join(missing)}; run `berg doctor` to see how to install them")
        try:
            on_step(f"Kafka {settings.kafka_version} jars")
            libs = kafka.fetch_kafka_jars(settings, layout)
            broker_config = kafka.write_broker_config(settings, layout)
            on_step("Kafka storage")
            kafka.ensure_storage_formatted(settings, layout, libs, broker_config)
        except kafka.KafkaRuntimeError as error:
            raise StackError(str(error)) from error
        on_step("Prometheus and Alertmanager configs")
        install_alert_rules(layout)
        prometheus_file = write_yaml(layout.prometheus_file, prometheus_config(settings, layout))
        ensure_controller_token(layout)
        alertmanager_file = write_yaml(layout.alertmanager_file, alertmanager_config(settings, layout))
        for spec in service_specs(settings, layout):
            register_scrape_target(layout, spec.name, f"{settings.host}:{spec.port}", {})
        host, ports = settings.host, settings.ports
        infrastructure = [
            Program("kafka", kafka.broker_command(settings, layout, libs, broker_config), priority=10, stop_wait_s=60),
            Program(
                "prometheus",
                [
                    str(binaries[settings.prometheus_bin]),
                    f"--config.file={prometheus_file}",
                    f"--storage.tsdb.path={layout.prometheus_data}",
                    f"--web.listen-address={host}:{ports.prometheus}",
                    "--web.enable-lifecycle",
                    "--storage.tsdb.retention.time=7d",
                ],
                priority=20,
            ),
            Program(
                "alertmanager",
                [
                    str(binaries[settings.alertmanager_bin]),
                    f"--config.file={alertmanager_file}",
                    f"--storage.path={layout.alertmanager_data}",
                    f"--web.listen-address={host}:{ports.alertmanager}",
                    # One node: no gossip cluster, and no port for it.
                    "--cluster.listen-address=",
                ],
                priority=20,
            ),
        ]
        return infrastructure + service_programs(settings, layout)

    def start(self, programs: list[Program]) -> None:
        """Start the supervisor with ``programs`` (from :meth:`prepare`).

        Raises:
            StackError: the supervisor did not start.
        """
        try:
            self.supervisor.start(programs)
        except SupervisorError as error:
            raise StackError(str(error)) from error

    def probes(self) -> dict[str, Probe]:
        """A health probe per component: the infrastructure, then the enabled Berg services."""
        probes = stack_probes(self.settings)
        for spec in service_specs(self.settings, self.layout):
            base = f"http://{self.settings.host}:{spec.port}"
            probes[spec.name] = (
                partial(http_ready, f"{base}/readyz") if spec.must_be_ready else partial(http_live, base)
            )
        return probes

    def service_names(self) -> list[str]:
        """The enabled Berg services, in pipeline order."""
        return [spec.name for spec in service_specs(self.settings, self.layout)]

    def start_stopped(self, names: Collection[str]) -> list[str]:
        """Start each named program that is not running (in the order given); return those started.

        Raises:
            StackError: a program is unknown to the running supervisor (the stack was started
                with other settings), or could not be started.
        """
        try:
            processes = {info.name: info for info in self.supervisor.processes()}
            started = []
            for name in names:
                info = processes.get(name)
                if info is None:
                    raise StackError(
                        f"{name} is not part of the running stack (it was started with other BERG_* settings): "
                        "`berg down` then `berg up` starts it"
                    )
                if info.state in _STARTABLE_STATES:
                    self.supervisor.start_program(name)
                    started.append(name)
        except SupervisorError as error:
            raise StackError(str(error)) from error
        return started

    def status(self, components: Collection[str] | None = None) -> list[ComponentStatus]:
        """Each component's process state and health probe (all components, or the named ones)."""
        processes: dict[str, ProcessInfo] = (
            {info.name: info for info in self.supervisor.processes()} if self.supervisor.is_running() else {}
        )
        statuses = []
        for name, probe in self.probes().items():
            if components is not None and name not in components:
                continue
            info = processes.get(name)
            result = probe() if info is not None and info.running else ProbeResult(False, "not running")
            statuses.append(
                ComponentStatus(
                    name=name,
                    process_state=info.state if info else "DOWN",
                    pid=info.pid if info else 0,
                    healthy=result.healthy,
                    detail=result.detail,
                    log_file=str(self.layout.log_file(name)),
                )
            )
        return statuses

    def wait_healthy(
        self,
        on_update: Callable[[list[ComponentStatus]], None] = lambda _: None,
        components: Collection[str] | None = None,
    ) -> list[ComponentStatus]:
        """Poll until every component (or each named one) is healthy.

        Raises:
            StackError: a process failed for good, or the startup timeout passed;
                the message carries the tail of the failing component's log.
        """
        deadline = time.monotonic() + self.settings.startup_timeout_s
        while True:
            statuses = self.status(components)
            on_update(statuses)
            if all(status.healthy for status in statuses):
                return statuses
            failed = [status for status in statuses if status.process_state in _FAILED_STATES]
            if failed or time.monotonic() > deadline:
                culprit = failed[0] if failed else next(status for status in statuses if not status.healthy)
                reason = (
                    f"{culprit.name} is {culprit.process_state}" if failed else f"{culprit.name} not healthy in time"
                )
                raise StackError(
                    f"{reason} ({culprit.detail}). Last lines of {culprit.log_file}:\n{tail(culprit.log_file)}"
                )
            time.sleep(0.5)

    def use_case(self) -> UseCase:
        """The use case every service of the stack serves (``BERG_USE_CASE``, or the only one installed).

        Raises:
            StackError: ``BERG_USE_CASE`` names no installed use case (or is unset and not exactly one is).
        """
        try:
            return resolve_use_case(self.settings.use_case)
        except UseCaseError as error:
            raise StackError(f"BERG_USE_CASE: {error}") from None

    def up(
        self,
        on_step: Callable[[str], None] = lambda _: None,
        on_update: Callable[[list[ComponentStatus]], None] = lambda _: None,
    ) -> UpOutcome:
        """The whole ``berg up``, idempotent: start the stack when it is down, heal it when it is up.

        Either way in dependency order: Kafka, Prometheus and Alertmanager, until healthy; then
        the topics (created or updated); then the Berg services, which need both; then every
        component healthy. On a stack already up, what runs is left alone.

        Raises:
            StackError: a component could not be started or did not become healthy; the
                message says which and carries the tail of its log.
                Also when ``BERG_USE_CASE`` names no installed use case (or is unset and not exactly one is).
        """
        # A use case that is not installed is one line now, not a crash loop of every service later.
        self.use_case()
        fresh = not self.is_up()
        if fresh:
            # supervisord starts the infrastructure itself (autostart); the services wait for the topics.
            self.start(self.prepare(on_step))
            infrastructure = list(INFRASTRUCTURE)
        else:
            infrastructure = self.start_stopped(INFRASTRUCTURE)
        if infrastructure:
            on_step(", ".join(infrastructure))
        self.wait_healthy(on_update, components=INFRASTRUCTURE)
        created = self.create_topics()
        services = self.start_stopped(self.service_names())
        if services:
            on_step(", ".join(services))
        statuses = self.wait_healthy(on_update)
        return UpOutcome(fresh=fresh, started=infrastructure + services, created_topics=created, statuses=statuses)

    def create_topics(self) -> list[str]:
        """Create the use case's and the platform's topics with the configured partition counts; return those
        created."""
        use_case = self.use_case()
        specs = topic_specs(
            use_case.topics,
            use_case.raw_topics,
            self.settings.topic_partitions,
            self.settings.topic_partition_overrides,
        )
        return ensure_topics(self.kafka_settings, specs)

    def down(self) -> list[int]:
        """Stop every process and the supervisor.

        Returns:
            pids that did not stop in their grace period and were killed.
        """
        return self.supervisor.shutdown()
