"""Who sees the ads and whose ads they are: viewers with activity hours, campaigns with their pull.

A viewer has a device, a daily number of impressions, a few active hours a day in which most of
them fall, and a taste for clicking that no feature shows. A campaign has a share of the traffic,
a click-through of its own (its creative's pull: what the campaign's snapshot features learn) and
a typical bid.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from berg_clicks.contracts import Device

__all__ = ["ACTIVE_HOURS", "OFF_HOURS_ACTIVITY", "Audience", "Campaign", "CampaignPicker", "Viewer", "make_audience"]

ACTIVE_HOURS = 6
"""Length of a viewer's daily active window, in hours."""
OFF_HOURS_ACTIVITY = 0.15
"""Outside the active window a viewer browses at this fraction of the active rate."""
_DAILY_ACTIVITY = ACTIVE_HOURS + (24 - ACTIVE_HOURS) * OFF_HOURS_ACTIVITY
"""Hours of active-rate browsing a day adds up to."""
_MOBILE_SHARE = 0.55


@dataclass(frozen=True, slots=True)
class Viewer:
    """A person ads are shown to."""

    viewer_id: str
    device: Device
    """The screen the viewer browses on (one per viewer)."""
    daily_impressions: float
    """Expected impressions a day."""
    first_active_hour: int
    """UTC hour at which the viewer's active window starts."""
    affinity: float
    """The viewer's own log-odds of clicking, beside everything the model can see."""

    @property
    def peak_rate_per_s(self) -> float:
        """Impressions per second inside the active window; the day's total is :attr:`daily_impressions`."""
        return self.daily_impressions / (_DAILY_ACTIVITY * 3_600.0)

    def activity_at(self, hour: int) -> float:
        """The share of the peak rate at which the viewer browses in UTC ``hour``."""
        return 1.0 if (hour - self.first_active_hour) % 24 < ACTIVE_HOURS else OFF_HOURS_ACTIVITY


@dataclass(frozen=True, slots=True)
class Campaign:
    """An advertiser's campaign."""

    campaign_id: str
    traffic_weight: float
    """Its share of the impressions, relative to the other campaigns'."""
    pull: float
    """The log-odds of a click on its ads that its creative adds."""
    typical_bid: float
    """The median of its bids."""


@dataclass(frozen=True, slots=True)
class Audience:
    """The viewers and campaigns of one simulation."""

    viewers: tuple[Viewer, ...]
    campaigns: tuple[Campaign, ...]

    @property
    def daily_impressions(self) -> float:
        """Expected impressions a day of the whole audience."""
        return sum(viewer.daily_impressions for viewer in self.viewers)

    def campaign_picker(self) -> CampaignPicker:
        """Picks campaigns by their traffic weights."""
        return CampaignPicker(self.campaigns)


class CampaignPicker:
    """Draws the campaign of an impression in proportion to the campaigns' traffic weights."""

    def __init__(self, campaigns: Sequence[Campaign]) -> None:
        self._campaigns = tuple(campaigns)
        self._cumulative = list(itertools.accumulate(c.traffic_weight for c in campaigns))

    def pick(self, rng: random.Random) -> Campaign:
        """One campaign, drawn from ``rng``."""
        at = bisect.bisect_right(self._cumulative, rng.random() * self._cumulative[-1])
        return self._campaigns[min(at, len(self._campaigns) - 1)]


def make_audience(viewers: int, campaigns: int, rng: random.Random) -> Audience:
    """``viewers`` viewers and ``campaigns`` campaigns drawn from ``rng``.

    Impressions a day are log-normal around 6 per viewer (a long tail of heavy browsers); a
    campaign's pull is normal around 0 (sd 0.5) and its typical bid log-normal around 0.5.
    """
    if viewers < 1 or campaigns < 1:
        raise ValueError(f"viewers and campaigns must be at least 1, got {viewers} and {campaigns}")
    width = max(len(str(viewers - 1)), 5)
    people = tuple(
        Viewer(
            viewer_id=f"viewer-{number:0{width}d}",
            device="mobile" if rng.random() < _MOBILE_SHARE else "desktop",
            daily_impressions=rng.lognormvariate(math.log(5.0), 0.6),
            first_active_hour=rng.randrange(24),
            affinity=rng.gauss(0.0, 0.3),
        )
        for number in range(viewers)
    )
    advertisers = tuple(
        Campaign(
            campaign_id=f"campaign-{number:03d}",
            traffic_weight=rng.lognormvariate(0.0, 0.5),
            pull=rng.gauss(0.0, 0.5),
            typical_bid=rng.lognormvariate(math.log(0.5), 0.4),
        )
        for number in range(campaigns)
    )
    return Audience(people, advertisers)
