"""Reference data of the card-payment use case: its rules and its simulator read it.

The merchant category codes Berg knows (ISO 18245). The contract only asks for
four digits; the fraud rules (``FraudRules``) make validation and serving refuse codes outside this table, and the
simulator draws its merchants from it (and its ``unknown_category`` malformed
class from outside it).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["MERCHANT_CATEGORIES", "MERCHANT_CATEGORY_CODES"]

MERCHANT_CATEGORIES: Mapping[str, str] = MappingProxyType(
    {
        "4111": "Local and suburban commuter transport",
        "4121": "Taxicabs and limousines",
        "4511": "Airlines",
        "4814": "Telecommunication services",
        "4829": "Wire transfers and money orders",
        "4900": "Utilities",
        "5200": "Home supply warehouse stores",
        "5311": "Department stores",
        "5411": "Grocery stores, supermarkets",
        "5541": "Service stations",
        "5651": "Family clothing stores",
        "5691": "Clothing stores",
        "5732": "Electronics stores",
        "5812": "Eating places, restaurants",
        "5814": "Fast food restaurants",
        "5815": "Digital goods: media",
        "5816": "Digital goods: games",
        "5912": "Drug stores, pharmacies",
        "5942": "Book stores",
        "5944": "Jewelry stores",
        "5967": "Direct marketing: inbound teleservices",
        "5999": "Miscellaneous and specialty retail",
        "6011": "Automated cash disbursements",
        "6051": "Quasi-cash: crypto and foreign currency",
        "7011": "Hotels and lodging",
        "7832": "Motion picture theaters",
        "7995": "Betting and gambling",
        "8011": "Doctors",
    }
)
"""Merchant category code to its name."""

MERCHANT_CATEGORY_CODES: frozenset[str] = frozenset(MERCHANT_CATEGORIES)
"""The codes alone: the validation service's allowed set."""
