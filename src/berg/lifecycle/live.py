"""Live traffic through the loop: serving keeps answering while a challenger is trained, judged and swapped in.

While the loop closes, the demo does not stop the payment app: one paced stream of
scoring calls goes on, in order, and each answer is kept (its status and the model
version that scored it). The summary then shows the versions as consecutive runs,
``v0001 x 812 -> v0002 x 420``, and every failed call: a swap that dropped a request
would show as a failure, one that flapped as more than one switch.
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
    """Per successful transaction: the version that scored it."""
    errors: list[str] = field(default_factory=list)
    """The first few failed calls, for the summary."""

    def record_failure(self, what: str) -> None:
        self.calls += 1
        self.failed += 1
        if len(self.errors) < _ERROR_EXAMPLES:
            self.errors.append(what)

    def record_answer(self, body: object) -> None:
        """Count a 2xx answer; one that does not carry a prediction per transaction counts as failed."""
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
    """Score ``transactions`` (contract JSON) ``batch`` per call, one call at a time, a call every ``interval_s``.

    Runs on its own thread from :meth:`start`; :meth:`hurry` drops the pacing (the rest goes at once);
    :meth:`finish` waits for the last call and returns the tally. ``after_call(start, stop)`` runs after
    each call with the slice of ``transactions`` it scored (the payment app's record of them goes on to
    Kafka); if it raises, the stream stops and :meth:`finish` raises that error.
    """

    def __init__(
        self,
        url: str,
        transactions: Sequence[bytes],
        *,
        batch: int,
        interval_s: float,
        timeout_s: float = 10.0,
        after_call: Callable[[int, int], object] | None = None,
    ) -> None:
        if batch < 1 or interval_s < 0:
            raise ValueError(f"batch must be at least 1 and interval_s not negative, not {batch} and {interval_s}")
        self._url = url
        self._slices = [(i, min(i + batch, len(transactions))) for i in range(0, len(transactions), batch)]
        self._bodies = [b'{"instances":[' + b",".join(transactions[i:j]) + b"]}" for i, j in self._slices]
        self._after_call = after_call
        self._error: BaseException | None = None
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._hurry = threading.Event()
        self._thread = threading.Thread(target=self._run, name="berg-demo-live-traffic", daemon=True)
        self.tally = LiveTally()

    @property
    def calls_planned(self) -> int:
        return len(self._bodies)

    def start(self) -> None:
        self._thread.start()

    def hurry(self) -> None:
        self._hurry.set()

    def finish(self) -> LiveTally:
        self.hurry()
        if self._thread.is_alive():
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.tally

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=self._timeout_s, headers={"content-type": "application/json"}) as client:
                for body, (start, stop) in zip(self._bodies, self._slices, strict=True):
                    started = time.monotonic()
                    self._call(client, body)
                    if self._after_call is not None:
                        self._after_call(start, stop)
                    # Pacing, not polling: hurry() ends the wait at once.
                    self._hurry.wait(max(0.0, self._interval_s - (time.monotonic() - started)))
        except BaseException as error:  # handed to finish(), on the caller's thread
            self._error = error

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
