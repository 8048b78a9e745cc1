"""Live traffic through the loop: serving keeps answering while a challenger is trained, judged and swapped in.

While the loop closes, the demo does not stop the scoring application: one paced stream of
scoring calls goes on, in event-time order, slice by slice, each slice scored before it
goes to Kafka and only once the data plane has stored the slices before it, and each
answer is kept (its status and the model version that scored it). The summary then
shows the versions as consecutive runs, ``v0001 x 812 -> v0002 x 420``, and every
failed call: a swap that dropped a request would show as a failure, one that flapped
as more than one switch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx

__all__ = ["LiveTally", "LiveTraffic", "version_runs"]

_ERROR_EXAMPLES = 3
MIXED = "mixed"
"""The version recorded for a call whose predictions came from more than one version."""


def version_runs(versions: Iterable[str]) -> list[tuple[str, int]]:
    """Consecutive equal versions as (version, count), in order: ``a a b`` -> ``[(a, 2), (b, 1)]``."""
    runs: list[tuple[str, int]] = []
    for version in versions:
        if runs and runs[-1][0] == version:
            runs[-1] = (version, runs[-1][1] + 1)
        else:
            runs.append((version, 1))
    return runs


@dataclass
class LiveTally:
    """The answers of one live stream, in the order the calls were made."""

    calls: int = 0
    failed: int = 0
    versions: list[str] = field(default_factory=list)
    """Per successfully scored event: the version that scored it."""
    errors: list[str] = field(default_factory=list)
    """The first few failed calls, for the summary."""

    def record_failure(self, what: str) -> None:
        self.calls += 1
        self.failed += 1
        if len(self.errors) < _ERROR_EXAMPLES:
            self.errors.append(what)

    def record_answer(self, body: object) -> None:
        """Count a 2xx answer; one that does not carry a prediction per event counts as failed."""
        predictions = body.get("predictions") if isinstance(body, dict) else None
        if not isinstance(predictions, list) or not predictions:
            self.record_failure(f"an answer without predictions: {str(body)[:200]}")
            return
        self.calls += 1
        found = {str(p.get("model_version")) if isinstance(p, dict) else "?" for p in predictions}
        version = found.pop() if len(found) == 1 else MIXED
        self.versions.extend([version] * len(predictions))

    @property
    def scored(self) -> int:
        return len(self.versions)

    @property
    def runs(self) -> list[tuple[str, int]]:
        return version_runs(self.versions)

    def describe(self) -> str:
        """``v0001 x 812 -> v0002 x 420; failed calls 0``."""
        served = " -> ".join(f"{version} x {count:,}" for version, count in self.runs) or "nothing"
        return f"{served}; failed calls {self.failed}"


class LiveTraffic:
    """Score ``slices`` of scored events (contract JSON) in order, ``batch`` per call, one call at a time.

    Each slice is the traffic of a stretch of event time. Before a slice, ``before_slice(index)`` runs (the
    replay's freshness barrier: wait until the data plane has stored what came before); after its calls,
    ``after_slice(index)`` (the application's record of them goes on to Kafka). A slice starts at most every
    ``interval_s`` of wall time. Runs on its own thread from :meth:`start`; :meth:`pace` changes the
    interval while it runs and :meth:`hurry` drops it (the rest goes as fast as the barrier allows);
    :meth:`finish` waits for the last slice and returns the tally. If a hook raises, the stream stops and
    :meth:`finish` raises that error.
    """

    def __init__(
        self,
        url: str,
        slices: Sequence[Sequence[bytes]],
        *,
        batch: int,
        interval_s: float,
        timeout_s: float = 10.0,
        before_slice: Callable[[int], object] | None = None,
        after_slice: Callable[[int], object] | None = None,
    ) -> None:
        if batch < 1 or interval_s < 0:
            raise ValueError(f"batch must be at least 1 and interval_s not negative, not {batch} and {interval_s}")
        self._url = url
        self._bodies = [
            [b'{"instances":[' + b",".join(events[i : i + batch]) + b"]}" for i in range(0, len(events), batch)]
            for events in slices
        ]
        self._before_slice = before_slice
        self._after_slice = after_slice
        self._error: BaseException | None = None
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._paced = threading.Event()
        """Set whenever the pacing changes, so a wait in progress starts over with the new interval."""
        self._thread = threading.Thread(target=self._run, name="berg-demo-live-traffic", daemon=True)
        self.slices_done = 0
        self.tally = LiveTally()

    @property
    def calls_planned(self) -> int:
        return sum(len(calls) for calls in self._bodies)

    @property
    def slices_left(self) -> int:
        return len(self._bodies) - self.slices_done

    def start(self) -> None:
        self._thread.start()

    def pace(self, interval_s: float) -> None:
        """From now on, a slice at most every ``interval_s`` (the wait in progress is shortened or lengthened)."""
        if interval_s < 0:
            raise ValueError(f"interval_s must not be negative, not {interval_s}")
        self._interval_s = interval_s
        self._paced.set()

    def hurry(self) -> None:
        self.pace(0.0)

    def finish(self, *, hurry: bool = True) -> LiveTally:
        """Wait for the last slice (at once, or at the current pace with ``hurry=False``); the tally."""
        if hurry:
            self.hurry()
        if self._thread.is_alive():
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.tally

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=self._timeout_s, headers={"content-type": "application/json"}) as client:
                for index, calls in enumerate(self._bodies):
                    started = time.monotonic()
                    if self._before_slice is not None:
                        self._before_slice(index)
                    for body in calls:
                        self._call(client, body)
                    if self._after_slice is not None:
                        self._after_slice(index)
                    self.slices_done += 1
                    self._wait_turn(started)
        except BaseException as error:  # handed to finish(), on the caller's thread
            self._error = error

    def _wait_turn(self, started: float) -> None:
        # Pacing, not polling: pace() and hurry() end the wait at once (and a new pace starts another).
        while True:
            self._paced.clear()
            remaining = self._interval_s - (time.monotonic() - started)
            if remaining <= 0 or not self._paced.wait(remaining):
                return

    def _call(self, client: httpx.Client, body: bytes) -> None:
        try:
            response = client.post(self._url, content=body)
        except httpx.HTTPError as error:
            self.tally.record_failure(f"{type(error).__name__}: {error}")
            return
        if not response.is_success:
            self.tally.record_failure(f"{response.status_code}: {response.text[:200]}")
            return
        try:
            self.tally.record_answer(response.json())
        except ValueError:
            self.tally.record_failure(f"{response.status_code}: the answer is not JSON")
