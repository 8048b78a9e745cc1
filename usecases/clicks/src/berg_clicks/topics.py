"""The clicks case's Kafka topics: each stream's raw, ingested and valid topic."""

from __future__ import annotations

__all__ = [
    "CLICKS_INGESTED",
    "CLICKS_RAW",
    "CLICKS_VALID",
    "IMPRESSIONS_INGESTED",
    "IMPRESSIONS_RAW",
    "IMPRESSIONS_VALID",
]

IMPRESSIONS_RAW = "impressions.raw"
"""What the ad server (or the simulator) writes."""
IMPRESSIONS_INGESTED = "impressions.ingested"
IMPRESSIONS_VALID = "impressions.valid"
CLICKS_RAW = "clicks.raw"
"""The click labels, positive at click time or negative when the attribution window closes."""
CLICKS_INGESTED = "clicks.ingested"
CLICKS_VALID = "clicks.valid"
