"""Use cases installed for a test, so a default that follows the use case can be told from a literal.

``churn`` is the reference use case under another name: its streams and card are the fraud case's, only
its name (the model it trains) differs. (A use case of another domain, built directly rather than installed,
is ``tests/other_use_case.py``.)
"""

from __future__ import annotations

import dataclasses
from importlib.metadata import EntryPoint

import pytest

from berg import usecase
from berg.usecase import UseCase
from berg_fraud.use_case import fraud

__all__ = ["CHURN", "FRAUD", "churn", "installed"]


def churn() -> UseCase:
    """The reference use case, named ``churn``."""
    reference = fraud()
    return dataclasses.replace(reference, name="churn", card=reference.card.model_copy(update={"name": "churn"}))


CHURN = EntryPoint("churn", f"{__name__}:churn", usecase.ENTRY_POINT_GROUP)
FRAUD = EntryPoint("fraud", "berg_fraud.use_case:fraud", usecase.ENTRY_POINT_GROUP)


def installed(monkeypatch: pytest.MonkeyPatch, *entries: EntryPoint) -> None:
    """Make ``entries`` the only use cases :mod:`berg.usecase` finds, with ``BERG_USE_CASE`` unset."""
    monkeypatch.setattr(usecase, "entry_points", lambda group: [e for e in entries if e.group == group])
    monkeypatch.delenv("BERG_USE_CASE", raising=False)
