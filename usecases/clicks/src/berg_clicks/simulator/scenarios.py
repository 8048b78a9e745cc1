"""The scenarios: how the world behaves before the onset, and after it in each scenario.

- ``baseline``: nothing changes. The top slot is clicked most (each slot lower, less: about 15%
  of the top slot's impressions are clicked, under 2% of the last one's), mobile viewers click
  more, a higher bid buys a better creative, and a viewer shown many ads in the last hour clicks
  less. These pulls are strong enough that a model on the declared features beats the campaign's
  own click-through (the card's baseline) clearly.
- ``site_redesign`` (the drift ``berg demo`` plays): from the onset the publisher's new mobile app
  and layout move both the inputs and what predicts a click. Mobile viewers browse 2.5 times as
  much (the mobile share and the hourly impression counts rise), slots are served evenly, and
  the last slot becomes a sticky banner: the slot order of click-through reverses (the last slot
  is clicked most, the top one least), and fatigue from the last hour bites twice as hard. A model
  trained before the onset ranks slots the wrong way round, worse than the campaign's own
  click-through on the new world; one trained after it ranks them right and beats both.
- ``malformed``: the world of ``baseline``, but from the onset a share of impressions reach Kafka
  as malformed records (:mod:`berg_clicks.simulator.malformed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

__all__ = ["BASELINE", "DRIFT_SCENARIO", "SCENARIOS", "SLOTS", "Behaviour"]

SLOTS = 4
"""Slots of a placement: 0 (the top) to 3."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How impressions are served and clicked while a scenario is in force."""

    slot_weights: tuple[float, ...]
    """How often each slot is served, relative to the others."""
    slot_pull: tuple[float, ...]
    """The log-odds of a click each slot adds."""
    mobile_pull: float
    """The log-odds of a click a mobile screen adds."""
    bid_pull: float
    """The log-odds of a click per unit of log bid (a higher bid buys a better creative)."""
    fatigue: float
    """The log-odds of a click each impression the viewer saw in the previous hour takes away."""
    mobile_traffic: float = 1.0
    """Mobile viewers browse this many times their usual rate."""
    malformed: bool = False
    """Whether a share of impressions are replaced by malformed records."""

    def __post_init__(self) -> None:
        if len(self.slot_weights) != SLOTS or len(self.slot_pull) != SLOTS:
            raise ValueError(f"a behaviour has a weight and a pull for each of the {SLOTS} slots")


BASELINE = Behaviour(
    slot_weights=(0.45, 0.3, 0.15, 0.1),
    slot_pull=(1.2, 0.3, -0.8, -1.6),
    mobile_pull=0.7,
    bid_pull=1.5,
    fatigue=0.5,
)
"""The world before any onset, and the whole of ``baseline``."""

DRIFT_SCENARIO = "site_redesign"

SCENARIOS: Mapping[str, Behaviour] = MappingProxyType(
    {
        "baseline": BASELINE,
        DRIFT_SCENARIO: Behaviour(
            slot_weights=(0.25, 0.25, 0.25, 0.25),
            slot_pull=(-1.6, -0.8, 0.3, 1.2),
            mobile_pull=0.7,
            bid_pull=1.5,
            fatigue=1.0,
            mobile_traffic=2.5,
        ),
        "malformed": replace(BASELINE, malformed=True),
    }
)
"""Each scenario's behaviour from its onset on, ``baseline`` first."""
