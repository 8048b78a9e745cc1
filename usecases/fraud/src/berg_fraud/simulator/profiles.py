"""The population: users with spending profiles and merchants with categories and risk levels.

Merchant categories are ISO 18245 merchant category codes (MCC). The set Berg
knows is fixed in :mod:`berg_fraud.reference` (re-exported here as
:data:`KNOWN_MERCHANT_CATEGORIES`); the validation service uses it as its
allowed set, the simulator has a spending spec for each code, and its
``unknown_category`` malformed class uses a code outside it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from berg_fraud.reference import MERCHANT_CATEGORY_CODES

__all__ = [
    "FRAUD_SOURCE_COUNTRIES",
    "HOME_COUNTRIES",
    "KNOWN_MERCHANT_CATEGORIES",
    "MERCHANT_CATEGORY_SPECS",
    "MerchantCategory",
    "MerchantProfile",
    "Population",
    "RiskLevel",
    "UserProfile",
    "make_population",
]

RiskLevel = Literal["low", "medium", "high"]


@dataclass(frozen=True, slots=True)
class MerchantCategory:
    """One ISO 18245 merchant category code and how spending at it looks."""

    code: str
    """Four digits."""
    name: str
    amount_factor: float
    """Typical amount here relative to a user's usual amount (groceries 1.0, airlines 8.0)."""
    risk: RiskLevel
    """Risk level of the category; a merchant's own level starts from it."""


MERCHANT_CATEGORY_SPECS: tuple[MerchantCategory, ...] = (
    MerchantCategory("5411", "Grocery stores, supermarkets", 1.0, "low"),
    MerchantCategory("5812", "Eating places, restaurants", 1.2, "low"),
    MerchantCategory("5814", "Fast food restaurants", 0.4, "low"),
    MerchantCategory("5541", "Service stations", 1.5, "low"),
    MerchantCategory("5912", "Drug stores, pharmacies", 0.7, "low"),
    MerchantCategory("5311", "Department stores", 2.0, "low"),
    MerchantCategory("5651", "Family clothing stores", 1.8, "low"),
    MerchantCategory("5691", "Clothing stores", 1.8, "low"),
    MerchantCategory("5942", "Book stores", 0.8, "low"),
    MerchantCategory("5200", "Home supply warehouse stores", 2.5, "low"),
    MerchantCategory("4111", "Local and suburban commuter transport", 0.3, "low"),
    MerchantCategory("4121", "Taxicabs and limousines", 0.8, "low"),
    MerchantCategory("4814", "Telecommunication services", 1.3, "low"),
    MerchantCategory("4900", "Utilities", 2.2, "low"),
    MerchantCategory("7832", "Motion picture theaters", 0.6, "low"),
    MerchantCategory("8011", "Doctors", 2.0, "low"),
    MerchantCategory("5999", "Miscellaneous and specialty retail", 1.0, "medium"),
    MerchantCategory("6011", "Automated cash disbursements", 3.0, "medium"),
    MerchantCategory("5732", "Electronics stores", 4.0, "medium"),
    MerchantCategory("5944", "Jewelry stores", 5.0, "medium"),
    MerchantCategory("5815", "Digital goods: media", 0.5, "medium"),
    MerchantCategory("5816", "Digital goods: games", 0.6, "medium"),
    MerchantCategory("4511", "Airlines", 8.0, "medium"),
    MerchantCategory("7011", "Hotels and lodging", 5.0, "medium"),
    MerchantCategory("4829", "Wire transfers and money orders", 3.0, "high"),
    MerchantCategory("6051", "Quasi-cash: crypto and foreign currency", 3.0, "high"),
    MerchantCategory("7995", "Betting and gambling", 2.0, "high"),
    MerchantCategory("5967", "Direct marketing: inbound teleservices", 1.5, "high"),
)
"""Every merchant category the simulator uses, with its amount factor and risk."""

KNOWN_MERCHANT_CATEGORIES: frozenset[str] = MERCHANT_CATEGORY_CODES
"""The merchant category codes Berg knows (:mod:`berg_fraud.reference`); every spec above is one of them."""

HOME_COUNTRIES: tuple[str, ...] = ("DE", "FR", "NL", "BE", "AT", "ES", "IT", "PL", "SE", "IE", "PT", "GB")
"""Where users live and merchants sit (ISO 3166-1 alpha-2)."""

FRAUD_SOURCE_COUNTRIES: tuple[str, ...] = ("US", "BR", "NG", "RU", "CN", "ID", "UA", "VN", "RO", "TR")
"""Where stolen cards are used from, besides other home countries."""

# Home countries are not equally populous; the first ones carry most users.
_HOME_COUNTRY_WEIGHTS = (30, 20, 12, 6, 5, 8, 7, 4, 3, 2, 1, 2)

_SECONDS_PER_DAY = 86_400.0
_OFF_HOURS_WEIGHT = 0.1
"""Outside a user's active hours, their activity is this fraction of the in-hours level."""


@dataclass(frozen=True, slots=True)
class UserProfile:
    """A card holder and how they spend."""

    user_id: str
    home_country: str
    amount_level: float
    """Median amount of this user's everyday payments, in EUR."""
    amount_spread: float
    """Sigma of the lognormal around ``amount_level``."""
    card_not_present_propensity: float
    """Probability that a legitimate payment is online (card not present)."""
    daily_rate: float
    """Expected legitimate transactions per day."""
    first_active_hour: int
    """UTC hour the user's active window starts."""
    active_hours: int
    """Length of the active window in hours; it may wrap past midnight."""

    def is_active_at(self, hour: int) -> bool:
        """Whether ``hour`` (0-23, UTC) is inside the user's active window."""
        return (hour - self.first_active_hour) % 24 < self.active_hours

    @property
    def peak_rate_per_s(self) -> float:
        """Transactions per second inside the active window.

        The in-window level is chosen so the day's expected total is ``daily_rate``.
        """
        relative_day = self.active_hours + _OFF_HOURS_WEIGHT * (24 - self.active_hours)
        return self.daily_rate * 24 / relative_day / _SECONDS_PER_DAY

    def acceptance_at(self, hour: int) -> float:
        """Activity at ``hour`` relative to the peak: 1 inside the window, less outside."""
        return 1.0 if self.is_active_at(hour) else _OFF_HOURS_WEIGHT


@dataclass(frozen=True, slots=True)
class MerchantProfile:
    """A merchant: category, risk level, country and how popular it is."""

    merchant_id: str
    category: MerchantCategory
    risk: RiskLevel
    country: str
    popularity: float
    """Relative weight with which legitimate users pick this merchant."""


@dataclass(frozen=True, slots=True)
class Population:
    """Every user and merchant of one simulation."""

    users: tuple[UserProfile, ...]
    merchants: tuple[MerchantProfile, ...]

    def merchants_in(self, codes: Sequence[str]) -> tuple[MerchantProfile, ...]:
        """Merchants whose category is one of ``codes``; every merchant when none is."""
        found = tuple(m for m in self.merchants if m.category.code in codes)
        return found or self.merchants

    def merchants_at_risk(self, risk: RiskLevel) -> tuple[MerchantProfile, ...]:
        """Merchants of risk level ``risk``; every merchant when none is."""
        found = tuple(m for m in self.merchants if m.risk == risk)
        return found or self.merchants

    @property
    def legitimate_daily_rate(self) -> float:
        """Expected legitimate transactions per day, all users together."""
        return sum(user.daily_rate for user in self.users)


def _make_user(index: int, rng: random.Random) -> UserProfile:
    return UserProfile(
        user_id=f"user-{index:05d}",
        home_country=rng.choices(HOME_COUNTRIES, weights=_HOME_COUNTRY_WEIGHTS)[0],
        amount_level=round(min(max(rng.lognormvariate(math.log(35.0), 0.6), 5.0), 500.0), 2),
        amount_spread=rng.uniform(0.4, 0.9),
        card_not_present_propensity=rng.uniform(0.1, 0.6),
        daily_rate=min(max(rng.lognormvariate(math.log(2.0), 0.7), 0.2), 30.0),
        first_active_hour=rng.randrange(5, 11),
        active_hours=rng.randrange(12, 18),
    )


def _make_merchant(index: int, rng: random.Random) -> MerchantProfile:
    # The first merchants cycle through every category, so that with at least
    # as many merchants as categories each category (and each fraud pattern's
    # merchants) exists.
    category = (
        MERCHANT_CATEGORY_SPECS[index] if index < len(MERCHANT_CATEGORY_SPECS) else rng.choice(MERCHANT_CATEGORY_SPECS)
    )
    risk: RiskLevel = category.risk
    if risk == "low" and rng.random() < 0.1:
        risk = "medium"
    return MerchantProfile(
        merchant_id=f"merchant-{index:04d}",
        category=category,
        risk=risk,
        country=rng.choices(HOME_COUNTRIES, weights=_HOME_COUNTRY_WEIGHTS)[0],
        popularity=rng.lognormvariate(0.0, 1.0),
    )


def make_population(users: int, merchants: int, rng: random.Random) -> Population:
    """Draw ``users`` users and ``merchants`` merchants.

    Raises:
        ValueError: ``users`` or ``merchants`` is below 1.
    """
    if users < 1 or merchants < 1:
        raise ValueError(f"a population needs at least one user and one merchant, got {users} and {merchants}")
    return Population(
        users=tuple(_make_user(index, rng) for index in range(users)),
        merchants=tuple(_make_merchant(index, rng) for index in range(merchants)),
    )
