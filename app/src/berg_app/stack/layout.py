"""Where each file of the local stack lives under the state directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["StateLayout"]

# AF_UNIX socket paths are limited to 108 bytes on Linux.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class StateLayout:
    """Paths under one state directory; :meth:`create` makes the folders."""

    root: Path

    @classmethod
    def at(cls, state_dir: Path) -> StateLayout:
        """The layout for ``state_dir`` (made absolute, so child processes agree on it)."""
        return cls(state_dir.expanduser().resolve())

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def kafka_data(self) -> Path:
        return self.root / "data" / "kafka"

    @property
    def prometheus_data(self) -> Path:
        return self.root / "data" / "prometheus"

    @property
    def alertmanager_data(self) -> Path:
        return self.root / "data" / "alertmanager"

    @property
    def scrape_targets(self) -> Path:
        """File-based service discovery: one JSON file per Berg service to scrape."""
        return self.config / "scrape-targets"

    @property
    def rules(self) -> Path:
        """Prometheus rule files (``*.yml``) loaded by the stack's Prometheus."""
        return self.config / "rules"

    @property
    def secrets(self) -> Path:
        """Credentials the stack generates (mode 0700)."""
        return self.root / "secrets"

    @property
    def controller_token(self) -> Path:
        """Bearer token of the controller's Alertmanager webhook: Alertmanager sends it, the controller checks it."""
        return self.secrets / "controller-token"

    @property
    def prometheus_file(self) -> Path:
        """The stack's Prometheus configuration (written by ``berg up``)."""
        return self.config / "prometheus.yml"

    @property
    def alertmanager_file(self) -> Path:
        """The stack's Alertmanager configuration (written by ``berg up``): routes and the webhook's token file."""
        return self.config / "alertmanager.yml"

    @property
    def supervisor_socket(self) -> Path:
        return self.run / "supervisor.sock"

    @property
    def supervisor_pidfile(self) -> Path:
        return self.run / "supervisord.pid"

    @property
    def supervisor_config(self) -> Path:
        return self.config / "supervisord.conf"

    def kafka_libs(self, version: str) -> Path:
        """Cached Kafka jars for one version."""
        return self.root / "cache" / f"kafka-{version}" / "libs"

    def log_file(self, program: str) -> Path:
        return self.logs / f"{program}.log"

    def create(self) -> None:
        """Make every folder.

        Raises:
            ValueError: the state directory is so deep that the supervisor's
                socket path would not fit in a Unix socket address.
        """
        if len(str(self.supervisor_socket)) > _MAX_SOCKET_PATH:
            raise ValueError(
                f"state directory {self.root} is too deep for a Unix socket path; set BERG_STATE_DIR to a shorter path"
            )
        for folder in (
            self.logs,
            self.run,
            self.config,
            self.kafka_data,
            self.prometheus_data,
            self.alertmanager_data,
            self.scrape_targets,
            self.rules,
        ):
            folder.mkdir(parents=True, exist_ok=True)
