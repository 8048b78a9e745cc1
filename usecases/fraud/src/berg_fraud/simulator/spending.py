"""Legitimate spending: which merchant, how much, which channel and country, for one user's payment."""

from __future__ import annotations

import bisect
import itertools
import random

from berg_fraud.contracts import Channel
from berg_fraud.simulator.planned import PlannedTransaction, random_event_id
from berg_fraud.simulator.profiles import HOME_COUNTRIES, MerchantProfile, Population, UserProfile

__all__ = ["TRAVEL_SHARE", "MerchantPicker", "plan_legitimate", "round_amount"]

TRAVEL_SHARE = 0.03
"""Share of legitimate payments made abroad (in another home country)."""

_HIGH_RISK_POPULARITY_FACTOR = 0.1
"""Legitimate users rarely pay at high-risk merchants."""

_MAX_CARD_NOT_PRESENT_PROBABILITY = 0.98


def round_amount(amount: float) -> float:
    """An amount in cents, at least one cent."""
    return max(round(amount, 2), 0.01)


class MerchantPicker:
    """Picks a merchant for a legitimate payment, weighted by popularity."""

    def __init__(self, population: Population) -> None:
        self._merchants = population.merchants
        weights = [
            m.popularity * (_HIGH_RISK_POPULARITY_FACTOR if m.risk == "high" else 1.0) for m in population.merchants
        ]
        self._cumulative = list(itertools.accumulate(weights))

    def pick(self, rng: random.Random) -> MerchantProfile:
        """One merchant, drawn with one uniform number from ``rng``."""
        index = bisect.bisect_right(self._cumulative, rng.random() * self._cumulative[-1])
        return self._merchants[min(index, len(self._merchants) - 1)]


def plan_legitimate(
    at_s: float,
    user: UserProfile,
    merchants: MerchantPicker,
    rng: random.Random,
    *,
    amount_multiplier: float = 1.0,
    card_not_present_shift: float = 0.0,
) -> PlannedTransaction:
    """One payment the card holder made themselves.

    The amount is lognormal around the user's level times the category's factor
    (times ``amount_multiplier``); the channel is online with the user's
    propensity (plus ``card_not_present_shift``); the country is home except
    for :data:`TRAVEL_SHARE` of payments. The number of draws from ``rng`` does
    not depend on the multiplier or the shift, so a shifted stream stays
    aligned with an unshifted one draw for draw.
    """
    event_id = random_event_id(rng)
    merchant = merchants.pick(rng)
    amount = user.amount_level * merchant.category.amount_factor * amount_multiplier
    amount *= rng.lognormvariate(0.0, user.amount_spread)
    online_probability = min(
        user.card_not_present_propensity + card_not_present_shift, _MAX_CARD_NOT_PRESENT_PROBABILITY
    )
    channel: Channel = "card_not_present" if rng.random() < online_probability else "card_present"
    travels = rng.random() < TRAVEL_SHARE
    abroad = rng.choice([c for c in HOME_COUNTRIES if c != user.home_country])
    return PlannedTransaction(
        at_s=at_s,
        event_id=event_id,
        user=user,
        merchant=merchant,
        amount=round_amount(amount),
        channel=channel,
        country=abroad if travels else user.home_country,
        pattern=None,
    )
