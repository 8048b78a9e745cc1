"""Fixtures of the validation service's tests: one GX context and its suites per session, event factories.

It sits here, not in ``tests/``: pytest (``--import-mode=importlib``, no namespace
packages) would name ``tests/conftest.py`` of this package ``tests.conftest``,
the name of the repository's top-level ``tests/conftest.py``, and refuse to load
both in one run. Here it is ``services.validation.conftest``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from services.validation.tests.helpers import (
    NOW,
    STREAMS,
    Engine,
    LabelFactory,
    TransactionFactory,
    label_factory,
    transaction_factory,
)

from berg_fraud.rules import FraudRules
from berg_validation.pandas_rules import PandasRules
from berg_validation.suites import Suites, build_suites, create_context
from berg_validation.verdict import Verdict


@pytest.fixture(scope="session")
def suites() -> Suites:
    """The suites under default settings, in one in-memory context for the whole session."""
    return build_suites(create_context(), STREAMS, FraudRules())


@pytest.fixture(scope="session")
def pandas_rules() -> PandasRules:
    """The same rules in pandas, under default settings."""
    return PandasRules(STREAMS, FraudRules())


@pytest.fixture(params=["gx", "pandas"])
def engine(request: pytest.FixtureRequest, suites: Suites, pandas_rules: PandasRules) -> Engine:
    """Each rule test runs on both engines: ``engine(frame, kind, now=NOW)``."""
    chosen = suites if request.param == "gx" else pandas_rules

    def validate(frame: Any, kind: Any, now: datetime = NOW) -> Verdict:
        return chosen.validate(frame, kind, now)

    return validate


@pytest.fixture
def transaction() -> TransactionFactory:
    """A plausible transaction per call; keyword overrides."""
    return transaction_factory()


@pytest.fixture
def label() -> LabelFactory:
    """A plausible label per call; keyword overrides."""
    return label_factory()
