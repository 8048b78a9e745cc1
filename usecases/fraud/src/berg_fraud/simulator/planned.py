"""A transaction the process has decided on but not yet emitted, and the kinds of fraud it may belong to."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Literal

from berg_fraud.contracts import Channel
from berg_fraud.simulator.profiles import MerchantProfile, UserProfile

__all__ = ["FraudPattern", "PlannedTransaction", "random_event_id"]

FraudPattern = Literal["account_takeover", "card_testing", "high_risk_merchant", "cloned_card"]
"""The fraud patterns of the process; ``cloned_card`` appears only with the ``concept_drift`` scenario."""


@dataclass(frozen=True, slots=True)
class PlannedTransaction:
    """One card payment, decided: who, where, how much, and whether it is fraud."""

    at_s: float
    """Event time, in seconds after the simulation's start."""
    event_id: uuid.UUID
    user: UserProfile
    merchant: MerchantProfile
    amount: float
    channel: Channel
    country: str
    pattern: FraudPattern | None
    """The fraud pattern this payment belongs to; ``None`` for a legitimate one."""

    @property
    def is_fraud(self) -> bool:
        """Whether the card holder did not make this payment."""
        return self.pattern is not None


def random_event_id(rng: random.Random) -> uuid.UUID:
    """A version-4 UUID drawn from ``rng``, so event ids are reproducible by seed."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)
