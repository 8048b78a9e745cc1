"""The generative process: impressions, their click labels and malformed records, in event-time order.

Impressions arrive as a Poisson process in event time. Each viewer browses at a peak rate inside
their active hours and at a fraction of it outside (thinning: a candidate arrival outside the
window is kept with that fraction's probability). An impression's campaign, placement, slot and
bid are drawn, and whether it is clicked follows :func:`~berg_clicks.simulator.propensity.click_probability`
under the behaviour in force. Its label waits in a heap ordered by event time: at the click when it
is clicked (within the attribution window), at the window's close when not. The heap holds at most
half an hour of labels.

Every random choice comes from one of four generators seeded from the plan's seed and a name
(``audience``, ``traffic``, ``clicks``, ``malformed``), and the clicks generator is drawn the same
for every impression, replaced or not: the same plan gives the same bytes, and a plan with malformed
records leaves every record it does not replace as the plan without them has it.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from berg.kafka.producer import encode_event
from berg.simulator.traffic import (
    MALFORMED_CLASS_HEADER,
    SCENARIO_HEADER,
    EventTruth,
    SimulatedEvent,
    TrafficPlan,
)
from berg_clicks.attribution import ATTRIBUTION_WINDOW
from berg_clicks.contracts import ClickV1, ImpressionV1
from berg_clicks.simulator.audience import Audience, Campaign, CampaignPicker, Viewer, make_audience
from berg_clicks.simulator.malformed import MALFORMED_CLASSES
from berg_clicks.simulator.propensity import Shown, click_probability
from berg_clicks.simulator.scenarios import BASELINE, SCENARIOS, Behaviour
from berg_clicks.topics import CLICKS_RAW, IMPRESSIONS_RAW

__all__ = ["MEAN_CLICK_DELAY_S", "PLACEMENT_WEIGHTS", "Process", "random_event_id"]

MEAN_CLICK_DELAY_S = 40.0
"""A click comes this long after its impression on average (exponential, cut at the window)."""
PLACEMENT_WEIGHTS: Mapping[str, float] = {"feed": 0.5, "sidebar": 0.3, "search": 0.2}
"""How often each placement is served: every placement the rules know (a test holds them to it)."""

_WINDOW_S = ATTRIBUTION_WINDOW.total_seconds()
_HOUR_S = 3_600.0


def random_event_id(rng: random.Random) -> uuid.UUID:
    """A version-4 UUID drawn from ``rng``, so event ids are reproducible by seed."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


@dataclass(frozen=True, slots=True)
class _Label:
    at_s: float
    label: ClickV1
    cause: str | None


class _Arrivals:
    """The candidate arrival rates of one behaviour: each viewer's peak rate, cumulated to pick one by."""

    def __init__(self, viewers: tuple[Viewer, ...], behaviour: Behaviour) -> None:
        self.cumulative = list(
            itertools.accumulate(
                viewer.peak_rate_per_s * (behaviour.mobile_traffic if viewer.device == "mobile" else 1.0)
                for viewer in viewers
            )
        )

    @property
    def total(self) -> float:
        return self.cumulative[-1]

    def pick(self, rng: random.Random) -> int:
        """The index of the viewer of the next candidate arrival."""
        return min(bisect.bisect_right(self.cumulative, rng.random() * self.total), len(self.cumulative) - 1)


class Process:
    """One plan's process. :meth:`events` can be iterated any number of times, always the same."""

    def __init__(self, plan: TrafficPlan, *, viewers: int, campaigns: int, malformed_share: float) -> None:
        if plan.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {plan.scenario!r}; the clicks simulator plays {sorted(SCENARIOS)}")
        self.plan = plan
        self.audience: Audience = make_audience(plan.population or viewers, campaigns, self._rng("audience"))
        self._campaigns = CampaignPicker(self.audience.campaigns)
        self._malformed_share = malformed_share if plan.malformed_share is None else plan.malformed_share
        self._onset_s = None if plan.onset is None else (plan.onset - plan.start).total_seconds()
        self._after = SCENARIOS[plan.scenario]
        self._start_epoch_s = plan.start.timestamp()

    def _rng(self, purpose: str) -> random.Random:
        # A str seed is hashed with SHA-512, the same in every process (unlike hash()).
        return random.Random(f"berg_clicks.simulator:{self.plan.seed}:{purpose}")  # noqa: S311 -- synthetic data

    def _time(self, at_s: float) -> datetime:
        return self.plan.start + timedelta(milliseconds=round(at_s * 1_000))

    def _after_onset(self, at_s: float) -> bool:
        return self._onset_s is not None and at_s >= self._onset_s

    def _scenario(self, at_s: float) -> str:
        return self.plan.scenario if self._after_onset(at_s) else "baseline"

    def events(self) -> Iterator[SimulatedEvent]:
        """The endless stream in event-time order; the caller bounds it."""
        traffic, clicks, malformed = self._rng("traffic"), self._rng("clicks"), self._rng("malformed")
        arrivals_before = _Arrivals(self.audience.viewers, BASELINE)
        same_traffic = self._after.mobile_traffic == BASELINE.mobile_traffic
        arrivals_after = arrivals_before if same_traffic else _Arrivals(self.audience.viewers, self._after)
        # The times of each viewer's impressions in the last hour: what tires them.
        recent: list[deque[float]] = [deque() for _ in self.audience.viewers]
        pending: list[tuple[float, int, _Label]] = []
        order = itertools.count()
        now_s = 0.0
        while True:
            arrivals = arrivals_after if self._after_onset(now_s) else arrivals_before
            next_s = now_s + traffic.expovariate(arrivals.total)
            if self._onset_s is not None and now_s < self._onset_s <= next_s and arrivals_after is not arrivals:
                # The rates change at the onset; arrivals are memoryless, so the clock restarts there. (When they
                # do not, nothing restarts: the stream before and after an onset is the baseline's own.)
                now_s = self._onset_s
                continue
            while pending and pending[0][0] <= next_s:
                yield self._label_event(heapq.heappop(pending)[2])
            now_s = next_s
            index = arrivals.pick(traffic)
            viewer = self.audience.viewers[index]
            if traffic.random() >= viewer.activity_at(self._hour(now_s)):
                continue
            seen = recent[index]
            while seen and seen[0] <= now_s - _HOUR_S:
                seen.popleft()
            event, label = self._impression(now_s, viewer, len(seen), traffic, clicks, malformed)
            seen.append(now_s)
            yield event
            if label is not None:
                heapq.heappush(pending, (label.at_s, next(order), label))

    def _hour(self, at_s: float) -> int:
        return int((self._start_epoch_s + at_s) // _HOUR_S) % 24

    def _impression(
        self,
        at_s: float,
        viewer: Viewer,
        impressions_last_hour: int,
        traffic: random.Random,
        clicks: random.Random,
        malformed: random.Random,
    ) -> tuple[SimulatedEvent, _Label | None]:
        """One impression's record (or the malformed record replacing it) and its pending label."""
        behaviour = self._after if self._after_onset(at_s) else BASELINE
        impression, campaign = self._draw_impression(at_s, viewer, behaviour, traffic)
        shown = Shown(
            impression.slot, viewer.device, impression.bid, campaign.pull, viewer.affinity, impressions_last_hour
        )
        # Drawn for every impression, so replacing one by a malformed record moves no other's draws.
        clicked = clicks.random() < click_probability(shown, behaviour)
        delay_s = min(max(clicks.expovariate(1.0 / MEAN_CLICK_DELAY_S), 1.0), _WINDOW_S)
        label_id = random_event_id(clicks)
        scenario = self._scenario(at_s)
        cause = campaign.campaign_id if clicked else None  # the campaign whose ad drew the click
        key = viewer.viewer_id.encode("utf-8")
        scenario_header = (SCENARIO_HEADER, scenario.encode("utf-8"))
        if behaviour.malformed and malformed.random() < self._malformed_share:
            kind = MALFORMED_CLASSES[malformed.choice(tuple(MALFORMED_CLASSES))]
            value = kind.corrupt(impression, malformed, self.plan.future_reference)
            truth = EventTruth(scenario, str(impression.event_id), clicked, cause, malformed_class=kind.name)
            headers = (scenario_header, (MALFORMED_CLASS_HEADER, kind.name.encode("utf-8")))
            return SimulatedEvent(IMPRESSIONS_RAW, key, value, headers, impression.event_time, "malformed", truth), None
        label_at_s = at_s + (delay_s if clicked else _WINDOW_S)
        label = ClickV1(
            event_id=label_id,
            event_time=self._time(label_at_s),
            impression_event_id=impression.event_id,
            viewer_id=viewer.viewer_id,
            clicked=clicked,
        )
        truth = EventTruth(scenario, str(impression.event_id), clicked, cause, label_due=label.event_time)
        value = encode_event(impression)
        event = SimulatedEvent(IMPRESSIONS_RAW, key, value, (scenario_header,), impression.event_time, "scored", truth)
        return event, _Label(label_at_s, label, cause)

    def _draw_impression(
        self, at_s: float, viewer: Viewer, behaviour: Behaviour, traffic: random.Random
    ) -> tuple[ImpressionV1, Campaign]:
        """What the ad server shows ``viewer`` at ``at_s``: a campaign's ad, in a placement and slot, at a bid."""
        campaign = self._campaigns.pick(traffic)
        placement = traffic.choices(tuple(PLACEMENT_WEIGHTS), weights=tuple(PLACEMENT_WEIGHTS.values()))[0]
        slot = traffic.choices(range(len(behaviour.slot_weights)), weights=behaviour.slot_weights)[0]
        bid = max(round(campaign.typical_bid * traffic.lognormvariate(0.0, 0.3), 2), 0.01)
        impression = ImpressionV1(
            event_id=random_event_id(traffic),
            event_time=self._time(at_s),
            viewer_id=viewer.viewer_id,
            campaign_id=campaign.campaign_id,
            placement=placement,
            device=viewer.device,
            bid=bid,
            slot=slot,
        )
        return impression, campaign

    def _label_event(self, pending: _Label) -> SimulatedEvent:
        label = pending.label
        scenario = self._scenario(pending.at_s)
        return SimulatedEvent(
            CLICKS_RAW,
            label.viewer_id.encode("utf-8"),
            encode_event(label),
            ((SCENARIO_HEADER, scenario.encode("utf-8")),),
            label.event_time,
            "label",
            EventTruth(scenario, str(label.impression_event_id), label.clicked, pending.cause),
        )
