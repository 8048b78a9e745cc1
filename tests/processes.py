"""Berg services as child processes, for tests that crash, restart and scale them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.helpers import free_port, wait_for

__all__ = ["ServiceProcess"]


_FEAST_SET_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


class ServiceProcess:
    """One instance of a Berg service (``python -m <module>``) with its own port and log file."""

    def __init__(
        self,
        module: str,
        env_prefix: str,
        settings: Mapping[str, str],
        log_dir: Path,
        name: str,
        *,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        """``settings`` are given ``env_prefix``; ``environment`` (unprefixed: ``BERG_STATE_DIR``) is added as is."""
        self.module = module
        self.name = name
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        self.env = {
            # Importing Feast in the test process sets PROMETHEUS_MULTIPROC_DIR (for its Gunicorn workers); a
            # service inheriting it would keep its metrics in mmap files, as no deployed service does.
            **{key: value for key, value in os.environ.items() if key not in _FEAST_SET_VARIABLES},
            **(environment or {}),
            **{f"{env_prefix}{key}": value for key, value in settings.items()},
            f"{env_prefix}WEB__PORT": str(self.port),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, **overrides: str) -> None:
        """Start (or restart) the process; ``overrides`` replace settings for this start only."""
        env = dict(self.env)
        prefix = next(key for key in self.env if key.endswith("WEB__PORT")).removesuffix("WEB__PORT")
        env.update({f"{prefix}{key}": value for key, value in overrides.items()})
        log = open(self.log_path, "ab")  # noqa: SIM115 -- handed to the child, closed below
        try:
            self.process = subprocess.Popen([sys.executable, "-m", self.module], env=env, stdout=log, stderr=log)
        finally:
            log.close()
        self.starts += 1

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout_s: float = 600) -> None:
        # Only bounds a hang: it returns as soon as the service is ready or has died, and a loaded machine can
        # take minutes to import a service's libraries (KServe, Feast, Great Expectations).
        wait_for(lambda: self.ready() or not self.alive(), timeout_s, f"{self.name} to be ready")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        if self.process is not None and self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 60) -> int | None:
        """SIGTERM and wait: the graceful path."""
        if self.process is None:
            return None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """One sample from the live process's /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    return float(sample.value)
        return 0.0

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
