"""Fraud patterns: how a stolen card or account is used, one episode at a time.

An episode starts at a point in event time, picks a victim and plans one or
more transactions that carry the victim's ``user_id``. Each pattern looks
different in the features a model sees:

- ``account_takeover``: a burst of 3 to 8 online payments minutes apart, from a
  foreign country, at electronics, jewelry, digital goods or airline merchants,
  for several times the victim's usual amount (at least about 250 EUR).
- ``card_testing``: 10 to 30 tiny online payments (0.50 to 2.00 EUR) seconds
  apart at one or two digital-goods or miscellaneous merchants, from one country.
- ``high_risk_merchant``: 1 to 3 online payments of a few hundred EUR at a
  high-risk merchant (wire transfer, quasi-cash, gambling, teleservices).
- ``cloned_card``: 2 to 5 card-present payments tens of minutes apart in a
  foreign country, at electronics, jewelry, department stores or service
  stations. Only the ``concept_drift`` scenario brings it in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from berg_fraud.contracts import Channel
from berg_fraud.simulator.planned import FraudPattern, PlannedTransaction, random_event_id
from berg_fraud.simulator.profiles import (
    FRAUD_SOURCE_COUNTRIES,
    HOME_COUNTRIES,
    MerchantProfile,
    Population,
    UserProfile,
)
from berg_fraud.simulator.spending import round_amount

__all__ = [
    "FRAUD_PATTERNS",
    "FraudPattern",
    "FraudPatternSpec",
    "plan_account_takeover",
    "plan_card_testing",
    "plan_cloned_card",
    "plan_high_risk_merchant",
]

EpisodePlanner = Callable[[float, UserProfile, Population, random.Random], list[PlannedTransaction]]

_TAKEOVER_CATEGORIES = ("5732", "5944", "5815", "5816", "4511")
_TESTING_CATEGORIES = ("5815", "5816", "5999")
_CLONED_CARD_CATEGORIES = ("5732", "5944", "5311", "5541")


def _foreign_country(victim: UserProfile, rng: random.Random) -> str:
    return rng.choice([c for c in FRAUD_SOURCE_COUNTRIES + HOME_COUNTRIES if c != victim.home_country])


def _burst(
    pattern: FraudPattern,
    at_s: float,
    victim: UserProfile,
    rng: random.Random,
    *,
    count: int,
    mean_gap_s: float,
    merchants: list[MerchantProfile],
    amount: Callable[[], float],
    channel: Channel,
    country: str,
) -> list[PlannedTransaction]:
    planned = []
    when = at_s
    for _ in range(count):
        planned.append(
            PlannedTransaction(
                at_s=when,
                event_id=random_event_id(rng),
                user=victim,
                merchant=rng.choice(merchants),
                amount=round_amount(amount()),
                channel=channel,
                country=country,
                pattern=pattern,
            )
        )
        when += rng.expovariate(1.0 / mean_gap_s)
    return planned


def plan_account_takeover(
    at_s: float, victim: UserProfile, population: Population, rng: random.Random
) -> list[PlannedTransaction]:
    """A burst of quick, large online payments from abroad."""
    level = math.log(max(4.0 * victim.amount_level, 250.0))
    return _burst(
        "account_takeover",
        at_s,
        victim,
        rng,
        count=rng.randint(3, 8),
        mean_gap_s=120.0,
        merchants=list(population.merchants_in(_TAKEOVER_CATEGORIES)),
        amount=lambda: rng.lognormvariate(level, 0.5),
        channel="card_not_present",
        country=_foreign_country(victim, rng),
    )


def plan_card_testing(
    at_s: float, victim: UserProfile, population: Population, rng: random.Random
) -> list[PlannedTransaction]:
    """Many tiny online payments at one or two merchants, to see whether the card works."""
    candidates = list(population.merchants_in(_TESTING_CATEGORIES))
    targets = rng.sample(candidates, k=min(len(candidates), rng.randint(1, 2)))
    return _burst(
        "card_testing",
        at_s,
        victim,
        rng,
        count=rng.randint(10, 30),
        mean_gap_s=20.0,
        merchants=targets,
        amount=lambda: rng.uniform(0.5, 2.0),
        channel="card_not_present",
        country=_foreign_country(victim, rng),
    )


def plan_high_risk_merchant(
    at_s: float, victim: UserProfile, population: Population, rng: random.Random
) -> list[PlannedTransaction]:
    """A few online payments of a few hundred EUR at a high-risk merchant."""
    merchant = rng.choice(population.merchants_at_risk("high"))
    country = victim.home_country if rng.random() < 0.7 else _foreign_country(victim, rng)
    return _burst(
        "high_risk_merchant",
        at_s,
        victim,
        rng,
        count=rng.randint(1, 3),
        mean_gap_s=600.0,
        merchants=[merchant],
        amount=lambda: rng.lognormvariate(math.log(300.0), 0.6),
        channel="card_not_present",
        country=country,
    )


def plan_cloned_card(
    at_s: float, victim: UserProfile, population: Population, rng: random.Random
) -> list[PlannedTransaction]:
    """A copied card used in person abroad: card present, moderately large amounts."""
    level = math.log(max(2.0 * victim.amount_level, 120.0))
    return _burst(
        "cloned_card",
        at_s,
        victim,
        rng,
        count=rng.randint(2, 5),
        mean_gap_s=1_800.0,
        merchants=list(population.merchants_in(_CLONED_CARD_CATEGORIES)),
        amount=lambda: rng.lognormvariate(level, 0.5),
        channel="card_present",
        country=_foreign_country(victim, rng),
    )


@dataclass(frozen=True, slots=True)
class FraudPatternSpec:
    """A fraud pattern: its name, how many transactions an episode has on average, and its planner."""

    name: FraudPattern
    mean_transactions: float
    """Expected transactions per episode (the mean of its uniform count)."""
    plan: EpisodePlanner


FRAUD_PATTERNS: Mapping[FraudPattern, FraudPatternSpec] = MappingProxyType(
    {
        "account_takeover": FraudPatternSpec("account_takeover", 5.5, plan_account_takeover),
        "card_testing": FraudPatternSpec("card_testing", 20.0, plan_card_testing),
        "high_risk_merchant": FraudPatternSpec("high_risk_merchant", 2.0, plan_high_risk_merchant),
        "cloned_card": FraudPatternSpec("cloned_card", 3.5, plan_cloned_card),
    }
)
"""Every fraud pattern the process knows, by name."""
