"""Scenarios: what changes in the generative process, and from which event time on.

Every scenario is the baseline process until its onset; from the onset on, its
own parameters are in force. The scenario in force is a function of event time
alone (:meth:`Scenario.in_force_at`), so a test knows the truth for each event.

- ``baseline``: nothing changes.
- ``covariate_shift``: legitimate amounts grow by :data:`COVARIATE_SHIFT_AMOUNT_MULTIPLIER`
  and each user's card-not-present probability by :data:`COVARIATE_SHIFT_CARD_NOT_PRESENT`.
  What is fraud does not change.
- ``concept_drift``: a new fraud pattern, ``cloned_card`` (card present, abroad),
  appears at :data:`CONCEPT_DRIFT_CLONED_CARD_SHARE` of transactions; payments that
  looked legitimate before are now fraud.
- ``fraud_wave``: the covariate shift, and the ``cloned_card`` pattern riding it at
  :data:`FRAUD_WAVE_CLONED_CARD_SHARE` of transactions: the story of ``berg demo``. The
  inputs move (feature drift is visible at once) and the old model misses fraud it
  never saw. The wave is large on purpose: with a few hundred users, 0.8 % leaves a
  test window a few dozen frauds and the champion-vs-challenger comparison to chance.
- ``label_delay_change``: chargeback delays grow by :data:`LABEL_DELAY_MULTIPLIER`.
- ``malformed``: a given share of transaction records is malformed, with a given
  mix of malformed classes (all classes equally by default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Literal, get_args

from berg_fraud.simulator.malformed import MALFORMED_CLASSES
from berg_fraud.simulator.planned import FraudPattern

__all__ = [
    "BASELINE_FRAUD_SHARES",
    "BASELINE_PARAMS",
    "CONCEPT_DRIFT_CLONED_CARD_SHARE",
    "COVARIATE_SHIFT_AMOUNT_MULTIPLIER",
    "COVARIATE_SHIFT_CARD_NOT_PRESENT",
    "DEFAULT_MALFORMED_SHARE",
    "FRAUD_WAVE_CLONED_CARD_SHARE",
    "LABEL_DELAY_MULTIPLIER",
    "SCENARIO_NAMES",
    "ProcessParams",
    "Scenario",
    "ScenarioName",
    "make_scenario",
]

ScenarioName = Literal["baseline", "covariate_shift", "concept_drift", "fraud_wave", "label_delay_change", "malformed"]
SCENARIO_NAMES: tuple[ScenarioName, ...] = get_args(ScenarioName)

BASELINE_FRAUD_SHARES: Mapping[FraudPattern, float] = MappingProxyType(
    {"account_takeover": 0.004, "card_testing": 0.006, "high_risk_merchant": 0.004}
)
"""Expected share of all transactions that belong to each fraud pattern: 1.4 % fraud in all."""

COVARIATE_SHIFT_AMOUNT_MULTIPLIER = 1.8
COVARIATE_SHIFT_CARD_NOT_PRESENT = 0.3
CONCEPT_DRIFT_CLONED_CARD_SHARE = 0.008
FRAUD_WAVE_CLONED_CARD_SHARE = 0.03
LABEL_DELAY_MULTIPLIER = 3.0
DEFAULT_MALFORMED_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class ProcessParams:
    """What the generative process does while one phase is in force."""

    amount_multiplier: float = 1.0
    """Scales every legitimate amount."""
    card_not_present_shift: float = 0.0
    """Added to each user's card-not-present probability (capped below 1)."""
    fraud_shares: Mapping[FraudPattern, float] = field(default_factory=lambda: BASELINE_FRAUD_SHARES)
    """Expected share of all transactions per fraud pattern."""
    chargeback_delay_multiplier: float = 1.0
    """Scales the median chargeback delay."""
    malformed_share: float = 0.0
    """Share of transaction records replaced by a malformed record."""
    malformed_mix: Mapping[str, float] = field(default_factory=dict)
    """Relative weight of each malformed class; used when ``malformed_share`` is above 0."""

    def __post_init__(self) -> None:
        if self.amount_multiplier <= 0 or self.chargeback_delay_multiplier <= 0:
            raise ValueError("multipliers must be positive")
        if any(share < 0 for share in self.fraud_shares.values()) or sum(self.fraud_shares.values()) >= 0.5:
            raise ValueError(f"fraud shares must be non-negative and sum below 0.5, got {dict(self.fraud_shares)}")
        if not 0.0 <= self.malformed_share <= 1.0:
            raise ValueError(f"malformed_share must be between 0 and 1, got {self.malformed_share}")
        unknown = set(self.malformed_mix) - set(MALFORMED_CLASSES)
        if unknown:
            raise ValueError(f"unknown malformed classes {sorted(unknown)}; known: {list(MALFORMED_CLASSES)}")
        if any(weight < 0 for weight in self.malformed_mix.values()):
            raise ValueError("malformed class weights must be non-negative")
        if self.malformed_share > 0 and sum(self.malformed_mix.values()) <= 0:
            raise ValueError("a positive malformed_share needs a malformed_mix with a positive weight")


BASELINE_PARAMS = ProcessParams()
"""The process before any onset, and all along in the ``baseline`` scenario."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario: its name, its onset in event time, and the process after the onset."""

    name: ScenarioName
    onset: datetime | None
    """From this event time on, ``after_onset`` is in force; ``None`` for the baseline."""
    after_onset: ProcessParams = BASELINE_PARAMS

    def __post_init__(self) -> None:
        if self.name != "baseline" and self.onset is None:
            raise ValueError(f"scenario {self.name} needs an onset")
        if self.onset is not None and self.onset.tzinfo is None:
            raise ValueError("the onset must be timezone-aware")

    def has_begun(self, event_time: datetime) -> bool:
        """Whether the scenario's own process is in force at ``event_time``."""
        return self.onset is not None and event_time >= self.onset

    def in_force_at(self, event_time: datetime) -> ScenarioName:
        """The scenario in force at ``event_time``: ``baseline`` before the onset, the scenario's name after."""
        return self.name if self.has_begun(event_time) else "baseline"

    def params_at(self, event_time: datetime) -> ProcessParams:
        """The process parameters in force at ``event_time``."""
        return self.after_onset if self.has_begun(event_time) else BASELINE_PARAMS


def make_scenario(
    name: ScenarioName,
    onset: datetime | None = None,
    *,
    malformed_share: float = DEFAULT_MALFORMED_SHARE,
    malformed_mix: Mapping[str, float] | None = None,
) -> Scenario:
    """The named scenario with its documented parameters.

    Args:
        name: one of :data:`SCENARIO_NAMES`.
        onset: when the scenario begins; required except for ``baseline`` (where it is ignored).
        malformed_share: share of malformed transaction records (``malformed`` only).
        malformed_mix: class name to relative weight (``malformed`` only); all classes equally by default.

    Raises:
        ValueError: an unknown name, a missing onset, or bad malformed settings.
    """
    if name == "baseline":
        return Scenario("baseline", None)
    if name == "covariate_shift":
        params = replace(
            BASELINE_PARAMS,
            amount_multiplier=COVARIATE_SHIFT_AMOUNT_MULTIPLIER,
            card_not_present_shift=COVARIATE_SHIFT_CARD_NOT_PRESENT,
        )
    elif name == "concept_drift":
        shares = {**BASELINE_FRAUD_SHARES, "cloned_card": CONCEPT_DRIFT_CLONED_CARD_SHARE}
        params = replace(BASELINE_PARAMS, fraud_shares=MappingProxyType(shares))
    elif name == "fraud_wave":
        shares = {**BASELINE_FRAUD_SHARES, "cloned_card": FRAUD_WAVE_CLONED_CARD_SHARE}
        params = replace(
            BASELINE_PARAMS,
            amount_multiplier=COVARIATE_SHIFT_AMOUNT_MULTIPLIER,
            card_not_present_shift=COVARIATE_SHIFT_CARD_NOT_PRESENT,
            fraud_shares=MappingProxyType(shares),
        )
    elif name == "label_delay_change":
        params = replace(BASELINE_PARAMS, chargeback_delay_multiplier=LABEL_DELAY_MULTIPLIER)
    elif name == "malformed":
        mix = dict.fromkeys(MALFORMED_CLASSES, 1.0) if malformed_mix is None else dict(malformed_mix)
        params = replace(BASELINE_PARAMS, malformed_share=malformed_share, malformed_mix=MappingProxyType(mix))
    else:
        raise ValueError(f"unknown scenario {name!r}; known: {list(SCENARIO_NAMES)}")
    return Scenario(name, onset, params)
