"""The clicks use case's descriptor: what the platform loads when ``BERG_USE_CASE=clicks``."""

from __future__ import annotations

from importlib import resources

from berg.problem.card import ProblemCard, parse_problem_card
from berg.usecase import LabelJoin, Stream, UseCase
from berg_clicks.contracts import ClickV1, ImpressionV1
from berg_clicks.features import clicks_features
from berg_clicks.rules import ClicksRules
from berg_clicks.simulator import ClicksSimulator
from berg_clicks.topics import (
    CLICKS_INGESTED,
    CLICKS_RAW,
    CLICKS_VALID,
    IMPRESSIONS_INGESTED,
    IMPRESSIONS_RAW,
    IMPRESSIONS_VALID,
)

__all__ = ["clicks", "problem_card"]


def problem_card() -> ProblemCard:
    """The clicks problem card (``card_v1.yaml``; a change of meaning is a new version, never an edit)."""
    return parse_problem_card(resources.files("berg_clicks").joinpath("card_v1.yaml").read_text(encoding="utf-8"))


def clicks() -> UseCase:
    """Ad impressions scored when served, judged within half an hour by a click or the window's close."""
    return UseCase(
        name="clicks",
        card=problem_card(),
        scored=Stream(
            "impressions", ImpressionV1, IMPRESSIONS_RAW, IMPRESSIONS_INGESTED, IMPRESSIONS_VALID, key="viewer_id"
        ),
        labels=Stream("clicks", ClickV1, CLICKS_RAW, CLICKS_INGESTED, CLICKS_VALID, key="viewer_id"),
        label_join=LabelJoin(event_id="event_id", subject_id="impression_event_id", target="clicked", amount="bid"),
        features=clicks_features(),
        rules=ClicksRules,
        simulator=ClicksSimulator(),
    )
