"""The fraud use case's descriptor: what the platform loads when ``BERG_USE_CASE=fraud``."""

from __future__ import annotations

from importlib import resources

from berg.problem.card import ProblemCard, parse_problem_card
from berg.usecase import LabelJoin, Stream, UseCase
from berg_fraud.contracts import LabelV1, TransactionV1
from berg_fraud.features import fraud_features
from berg_fraud.predictions import PredictionV1, PredictionV2
from berg_fraud.rules import FraudRules
from berg_fraud.simulator import FraudSimulator
from berg_fraud.topics import (
    LABELS_INGESTED,
    LABELS_RAW,
    LABELS_VALID,
    TRANSACTIONS_INGESTED,
    TRANSACTIONS_RAW,
    TRANSACTIONS_VALID,
)

__all__ = ["fraud", "problem_card"]


def problem_card() -> ProblemCard:
    """The fraud problem card (``card_v1.yaml``; a change of meaning is a new version, never an edit)."""
    return parse_problem_card(resources.files("berg_fraud").joinpath("card_v1.yaml").read_text(encoding="utf-8"))


def fraud() -> UseCase:
    """Card payments scored at authorization, judged weeks later by chargebacks and reports."""
    return UseCase(
        name="fraud",
        card=problem_card(),
        scored=Stream(
            "transactions", TransactionV1, TRANSACTIONS_RAW, TRANSACTIONS_INGESTED, TRANSACTIONS_VALID, key="user_id"
        ),
        labels=Stream("labels", LabelV1, LABELS_RAW, LABELS_INGESTED, LABELS_VALID, key="user_id"),
        label_join=LabelJoin(
            event_id="event_id", subject_id="transaction_event_id", target="is_fraud", amount="amount"
        ),
        features=fraud_features(),
        rules=FraudRules,
        legacy_predictions=(PredictionV1, PredictionV2),
        simulator=FraudSimulator(),
    )
