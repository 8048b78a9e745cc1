"""A bounded queue drained into Kafka by one thread, off the request path: the prediction log's and the shadow's.

What the two share: handing records over never blocks (a full queue says so, and the caller counts the
drop); the thread opens its Kafka producer when it first needs one and retries while Kafka does not answer;
closing goes on sending what is queued for a while, flushes, and reports what was left. What each does with
the records it takes (encode them, or score them first) is its own (:meth:`QueuedKafkaSender._handle`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["QueuedKafkaSender"]

log = logging.getLogger(__name__)

_POLL_S = 0.2

ItemT = TypeVar("ItemT")


class QueuedKafkaSender(ABC, Generic[ItemT]):
    """One thread taking items from a bounded queue in batches and handing them to a Kafka producer.

    Args:
        open_producer: builds the Kafka producer (retried from the thread until Kafka answers).
        capacity: how many items may wait.
        thread_name: the thread's name (in thread dumps and profiles).
        batch_rows: most items taken at once.
        retry_s: wait between attempts to open the producer.
    """

    def __init__(
        self,
        open_producer: Callable[[], Any],
        capacity: int,
        *,
        thread_name: str,
        batch_rows: int = 1,
        retry_s: float = 1.0,
    ) -> None:
        self._open_producer = open_producer
        self._batch_rows = batch_rows
        self._retry_s = retry_s
        self._queue: queue.Queue[ItemT] = queue.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def queued(self) -> int:
        """Items waiting now."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def _put(self, item: ItemT) -> bool:
        """Queue ``item`` without waiting; False when the queue is full (the caller counts the drop)."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def close(self, timeout_s: float) -> None:
        """Go on handling what is queued for up to ``timeout_s``, flush and close the producer; report the rest."""
        self._deadline = time.monotonic() + timeout_s
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s + 5.0)
        left = self._queue.qsize()
        if left:
            self._left_unsent(left)

    # What each sender does

    @abstractmethod
    def _handle(self, producer: Any, batch: list[ItemT]) -> None:
        """Produce what ``batch`` makes; never raises (a failure is counted and logged by the sender)."""

    @abstractmethod
    def _unreachable(self, error: Exception) -> None:
        """Kafka did not answer an attempt to open the producer (the next one is in ``retry_s``)."""

    @abstractmethod
    def _left_unsent(self, count: int) -> None:
        """``count`` items were still queued when the sender was closed."""

    def _needs_producer(self) -> bool:
        """Whether to open the producer now (by default at once); a sender with nothing to do yet may wait."""
        return True

    # The thread

    def _run(self) -> None:
        producer = None
        try:
            while not (self._stop.is_set() and (self._queue.empty() or time.monotonic() > self._deadline)):
                if producer is None:
                    if self._stop.is_set():
                        break  # Kafka never answered: what is queued is reported by close()
                    if not self._needs_producer() and self._queue.empty():
                        self._stop.wait(_POLL_S)
                        continue
                    producer = self._connect()
                    continue
                batch = self._take()
                if batch:
                    self._handle(producer, batch)
        finally:
            if producer is not None:
                remaining = max(0.0, self._deadline - time.monotonic()) if self._stop.is_set() else 5.0
                try:
                    producer.flush(timeout=min(remaining, 30.0))
                    producer.close(timeout=1.0)
                except Exception:
                    log.warning("the %s thread's producer did not close cleanly", self._thread.name, exc_info=True)

    def _connect(self) -> Any:
        try:
            return self._open_producer()
        except Exception as error:
            self._unreachable(error)
            self._stop.wait(self._retry_s)
            return None

    def _take(self) -> list[ItemT]:
        """The next batch: waits for one item, then takes what is already queued, up to ``batch_rows``."""
        try:
            batch = [self._queue.get(timeout=_POLL_S)]
        except queue.Empty:
            return []
        while len(batch) < self._batch_rows:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch
