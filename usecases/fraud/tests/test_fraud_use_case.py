"""The fraud use case as the platform loads it: through its entry point, by name."""

from __future__ import annotations

import pytest

from berg.usecase import load_use_case
from berg_fraud.contracts import LabelV1, TransactionV1
from berg_fraud.use_case import fraud

pytestmark = pytest.mark.unit


def test_the_platform_finds_the_fraud_case_by_name_and_it_is_the_packages_own() -> None:
    found = load_use_case("fraud")
    assert found == fraud()
    assert found.card.ref == "fraud@v1"
    assert (found.scored.contract, found.labels.contract) == (TransactionV1, LabelV1)
    assert found.label_join.target == found.card.target.column == "is_fraud"
    assert found.card.costs.currency == "EUR"
