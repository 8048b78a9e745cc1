"""The use-case descriptor and how the platform finds a use case by name (the ``berg.use_cases`` entry points)."""

from __future__ import annotations

import dataclasses

import pytest

from berg.problem.card import ProblemCard
from berg.usecase import (
    LabelJoin,
    Stream,
    UseCase,
    UseCaseError,
    installed_use_cases,
    load_use_case,
    resolve_use_case,
    resolve_use_case_or_exit,
)
from berg_clicks.contracts import ClickV1, ImpressionV1
from berg_clicks.features import clicks_features
from berg_clicks.use_case import clicks

pytestmark = pytest.mark.unit

FEATURES = clicks_features()


def card(target: str) -> ProblemCard:
    reference = clicks().card
    return reference.model_copy(update={"target": reference.target.model_copy(update={"column": target})})


def streams() -> tuple[Stream, Stream]:
    return clicks().streams


def test_a_use_case_of_another_domain_is_described_by_its_own_contracts_and_join() -> None:
    scored, labels = streams()
    join = LabelJoin(event_id="event_id", subject_id="impression_event_id", target="clicked", amount="bid")
    described = UseCase("clicks", card("clicked"), scored, labels, join, clicks_features())
    assert described.label_join.target == described.card.target.column == "clicked"
    assert (described.scored.contract, described.labels.contract) == (ImpressionV1, ClickV1)


def test_legacy_prediction_versions_that_could_not_be_told_apart_are_refused_when_the_use_case_loads() -> None:
    from berg_fraud.predictions import PredictionV2
    from berg_fraud.use_case import fraud

    reference = fraud()
    assert dataclasses.replace(reference, legacy_predictions=(PredictionV2,)).legacy_predictions == (PredictionV2,)
    with pytest.raises(UseCaseError, match=r"use case .fraud.: its legacy predictions: .*both declare version 2"):
        dataclasses.replace(reference, legacy_predictions=(PredictionV2, PredictionV2))


def test_a_join_or_key_naming_no_field_of_its_contract_is_refused_by_name() -> None:
    scored, labels = streams()
    with pytest.raises(UseCaseError, match=r"'converted', no field of ClickV1"):
        UseCase(
            "clicks",
            card("converted"),
            scored,
            labels,
            LabelJoin("event_id", "impression_event_id", "converted"),
            FEATURES,
        )
    with pytest.raises(UseCaseError, match=r"stream 'impressions': 'advertiser_id' is no field of ImpressionV1"):
        dataclasses.replace(scored, key="advertiser_id")
    with pytest.raises(UseCaseError, match="the problem card's target is 'converted'"):
        UseCase(
            "clicks",
            card("converted"),
            scored,
            labels,
            LabelJoin("event_id", "impression_event_id", "clicked"),
            FEATURES,
        )


def test_the_installed_use_case_is_found_through_its_entry_point_and_is_the_default_when_alone() -> None:
    installed = installed_use_cases()
    assert installed, "the workspace installs the reference use case"
    for name in installed:
        use_case = load_use_case(name)
        assert use_case.name == use_case.card.name == name
    if len(installed) == 1:
        assert resolve_use_case(None).name == installed[0]
    else:
        with pytest.raises(UseCaseError, match="set BERG_USE_CASE"):
            resolve_use_case(None)


def test_an_unknown_use_case_is_one_line_naming_the_setting_and_what_is_installed() -> None:
    with pytest.raises(UseCaseError, match=r"no use case named 'weather' is installed \(installed: "):
        load_use_case("weather")
    with pytest.raises(SystemExit) as exited:
        resolve_use_case_or_exit("weather")
    message = str(exited.value)
    assert message.startswith("BERG_USE_CASE: no use case named 'weather'")
    assert "\n" not in message
