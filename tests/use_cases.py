"""Use cases installed for a test, so a default that follows the use case can be told from a literal.

``churn`` is the reference use case under another name: its streams and card are the fraud case's, only
its name (the model it trains) differs. The use case of another domain is the installed ``clicks`` member
(``usecases/clicks``, package ``berg_clicks``); :func:`impression` makes plausible events of it.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from berg import usecase
from berg.usecase import UseCase
from berg_clicks.contracts import ImpressionV1
from berg_fraud.use_case import fraud

__all__ = ["CHURN", "CLICKS", "FRAUD", "churn", "impression", "installed"]


def churn() -> UseCase:
    """The reference use case, named ``churn``."""
    reference = fraud()
    return dataclasses.replace(reference, name="churn", card=reference.card.model_copy(update={"name": "churn"}))


CHURN = EntryPoint("churn", f"{__name__}:churn", usecase.ENTRY_POINT_GROUP)
FRAUD = EntryPoint("fraud", "berg_fraud.use_case:fraud", usecase.ENTRY_POINT_GROUP)
CLICKS = EntryPoint("clicks", "berg_clicks.use_case:clicks", usecase.ENTRY_POINT_GROUP)


def installed(monkeypatch: pytest.MonkeyPatch, *entries: EntryPoint) -> None:
    """Make ``entries`` the only use cases :mod:`berg.usecase` finds, with ``BERG_USE_CASE`` unset."""
    monkeypatch.setattr(usecase, "entry_points", lambda group: [e for e in entries if e.group == group])
    monkeypatch.delenv("BERG_USE_CASE", raising=False)


def impression(number: int, now: datetime, **overrides: Any) -> ImpressionV1:
    """A plausible impression of the clicks case: ``number`` varies its viewer, campaign, device and bid."""
    fields: dict[str, Any] = {
        "event_id": uuid.UUID(int=number + 1),
        "event_time": now.astimezone(UTC),
        "viewer_id": f"v-{number % 37}",
        "campaign_id": f"c-{number % 5}",
        "placement": ("feed", "sidebar", "search")[number % 3],
        "device": "mobile" if number % 2 else "desktop",
        "bid": 0.2 + (number % 10) / 10,
        "slot": number % 4,
    }
    return ImpressionV1.model_validate({**fields, **overrides})
