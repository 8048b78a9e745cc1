"""Run an ASGI app under uvicorn in a background thread.

Consumer services (ingestion, validation...) spend their main thread in the
Kafka loop and serve ``/healthz``, ``/readyz`` and ``/metrics`` from here.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI

from berg.web.app import WebSettings

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """A uvicorn server on its own thread; ``start`` returns once it listens."""

    def __init__(self, app: FastAPI, settings: WebSettings) -> None:
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="berg-http", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        """Start serving.

        Raises:
            RuntimeError: the server did not come up within ``timeout_s`` (port taken?).
        """
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("HTTP server did not start; is the port already in use?")
            time.sleep(0.02)

    @property
    def port(self) -> int:
        """The bound port (useful when the settings asked for port 0)."""
        sockets = [s for server in self._server.servers for s in server.sockets]
        return int(sockets[0].getsockname()[1])

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to finish in-flight requests and exit."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
