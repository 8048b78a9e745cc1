"""The background loop: calls the controller's ``tick`` every few seconds on its own thread, until stopped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from berg_controller.store import StoreUnavailable

__all__ = ["BackgroundLoop"]

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Runs ``tick`` every ``interval_s`` (from the end of one to the start of the next); a failing tick is
    logged and the loop goes on.

    Args:
        tick: the work of one round; it must return in bounded time.
        interval_s: the pause between rounds.
    """

    def __init__(self, tick: Callable[[], None], interval_s: float) -> None:
        self._tick = tick
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="berg-controller-loop", daemon=True)
        self._last_success: float | None = None

    def start(self) -> None:
        self._thread.start()

    def run_once(self) -> bool:
        """One round now, on the caller's thread; True when it succeeded."""
        try:
            self._tick()
        except StoreUnavailable as error:
            log.warning("the background loop could not reach the database: %s", error)
            return False
        except Exception:
            log.exception("a round of the background loop failed")
            return False
        self._last_success = time.monotonic()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.run_once()

    def healthy(self, stale_after_s: float) -> bool:
        """Whether a round succeeded within the last ``stale_after_s`` seconds."""
        return self._last_success is not None and time.monotonic() - self._last_success < stale_after_s

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the loop to stop and wait for the round in hand to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
