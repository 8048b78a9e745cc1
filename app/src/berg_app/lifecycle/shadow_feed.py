"""Feeding the shadow stage: the demo's live traffic hurries while the challenger in shadow needs predictions.

The live traffic goes at a pace that spreads it over the time the loop may take to close, so that it is
still going when serving swaps. The shadow stage, though, waits for traffic: it passes on a number of
shadow predictions (the stack's ``rollout_shadow_min_predictions``), and at that pace they took the
demo about 100 s. So while the challenger is in shadow and serving has sent fewer shadow predictions
than the stage needs, the stream goes as fast as its freshness barrier allows; once serving has sent
them, or the stage is over, it goes back to its pace, and the rest is left for the swap.

The count is serving's own (``berg_serving_shadow_predictions_total``), not monitoring's through
Prometheus: that one lags by a scrape, during which a hurried stream would spend the traffic the swap
needs.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ShadowFeed"]


class ShadowFeed:
    """Called with the rollout's stage at each look (``follow_rollout``'s ``on_poll``); hurries or resumes.

    Args:
        needed: shadow predictions the stage passes on.
        sent: serving's count of shadow predictions so far (None: serving did not answer; nothing changes).
        hurry: make the stream go as fast as it can.
        resume: put the stream back on its pace.
    """

    def __init__(
        self,
        *,
        needed: int,
        sent: Callable[[], float | None],
        hurry: Callable[[], object],
        resume: Callable[[], object],
    ) -> None:
        self._needed = needed
        self._sent = sent
        self._hurry = hurry
        self._resume = resume
        self._before = 0.0
        self.hurrying = False

    def start(self) -> None:
        """Take serving's count before this rollout (earlier shadows' predictions do not count for it)."""
        self._before = self._sent() or 0.0

    def __call__(self, stage: str) -> None:
        wanted = False
        if stage == "shadow":
            sent = self._sent()
            wanted = self.hurrying if sent is None else sent - self._before < self._needed
        if wanted and not self.hurrying:
            self._hurry()
        elif self.hurrying and not wanted:
            self._resume()
        self.hurrying = wanted
