"""The promotion gate (``decide``) over hand-built evaluation reports, and the report's JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from berg.problem.card import PromotionRule
from berg_fraud.use_case import problem_card
from berg_pipelines.runtime.evaluate import EvaluationReport, ModelEvaluation
from berg_pipelines.runtime.gate import decide

pytestmark = pytest.mark.unit

NAN = float("nan")
CARD_RULE = problem_card().promotion


def model(name: str, pr_auc: float, *, expected_cost: float = 1000.0, roc_auc: float = 0.9) -> ModelEvaluation:
    return ModelEvaluation(
        name=name,
        pr_auc=pr_auc,
        roc_auc=roc_auc,
        threshold=0.5,
        precision=0.4,
        recall=0.7,
        expected_cost=expected_cost,
        expected_cost_per_event=expected_cost / 1000,
        confusion={"true_positives": 7, "false_positives": 10, "true_negatives": 980, "false_negatives": 3},
        positive_amount_caught=700.0,
        positive_amount_missed=300.0,
    )


def report(
    challenger: ModelEvaluation, baseline: ModelEvaluation, champion: ModelEvaluation | None = None
) -> EvaluationReport:
    return EvaluationReport(
        card="fraud@v1",
        test_rows=1000,
        test_positives=10,
        challenger=challenger,
        baseline=baseline,
        champion=champion,
        champion_version="v0003" if champion is not None else None,
    )


def rule(**changes: object) -> PromotionRule:
    return CARD_RULE.model_copy(update=changes)


def test_the_card_rule_is_what_these_tests_assume() -> None:
    assert CARD_RULE.metric == "pr_auc"
    assert CARD_RULE.min_lift_over_baseline == pytest.approx(0.02)
    assert CARD_RULE.min_lift_over_champion == pytest.approx(0.005)
    assert CARD_RULE.require_lower_cost_than_champion


def test_a_clear_winner_without_a_champion_is_promoted() -> None:
    decision = decide(CARD_RULE, report(model("challenger", 0.60), model("baseline", 0.10)))
    assert decision.promote
    assert len(decision.reasons) == 2
    assert "beats the baseline" in decision.reasons[0]
    assert "0.6000" in decision.reasons[0]
    assert "0.1000" in decision.reasons[0]
    assert decision.reasons[1] == "no production champion yet"
    assert decision.summary.startswith("promote: ")


def test_a_clear_winner_over_baseline_and_champion_is_promoted() -> None:
    decision = decide(
        CARD_RULE,
        report(
            model("challenger", 0.60, expected_cost=900.0),
            model("baseline", 0.10),
            model("champion", 0.50, expected_cost=1000.0),
        ),
    )
    assert decision.promote, decision.summary
    assert any("beats champion v0003" in reason for reason in decision.reasons)
    assert any(reason.startswith("expected cost 900.00 <= champion's 1,000.00") for reason in decision.reasons)


@pytest.mark.parametrize("lift", [0.0, 0.01, 0.0199, -0.2])
def test_too_small_a_lift_over_the_baseline_is_refused(lift: float) -> None:
    decision = decide(CARD_RULE, report(model("challenger", 0.30 + lift), model("baseline", 0.30)))
    assert not decision.promote
    failed = [reason for reason in decision.reasons if "is not at least" in reason]
    assert len(failed) == 1
    assert "0.0200 better than the baseline's 0.3000" in failed[0]
    assert decision.summary.startswith("do not promote: ")


def test_a_lift_of_exactly_the_margin_passes() -> None:
    # Binary fractions, so the lift is exactly the margin.
    margins = rule(min_lift_over_baseline=0.25, min_lift_over_champion=0.125)
    decision = decide(
        margins, report(model("challenger", 0.75), model("baseline", 0.5), model("champion", 0.625, expected_cost=1e6))
    )
    assert decision.promote, decision.summary


@pytest.mark.parametrize("champion_pr_auc", [0.60, 0.598, 0.70])
def test_too_small_a_lift_over_the_champion_is_refused(champion_pr_auc: float) -> None:
    decision = decide(
        CARD_RULE,
        report(
            model("challenger", 0.60, expected_cost=500.0),
            model("baseline", 0.10),
            model("champion", champion_pr_auc, expected_cost=1000.0),
        ),
    )
    assert not decision.promote
    failed = [reason for reason in decision.reasons if "is not at least" in reason]
    assert len(failed) == 1
    assert "0.0050 better than champion v0003's" in failed[0]
    assert "beats the baseline" in decision.reasons[0], "the baseline rule passed and says so"


def test_a_higher_cost_than_the_champion_is_refused() -> None:
    decision = decide(
        CARD_RULE,
        report(
            model("challenger", 0.70, expected_cost=1200.5),
            model("baseline", 0.10),
            model("champion", 0.50, expected_cost=1000.0),
        ),
    )
    assert not decision.promote
    assert any("beats champion v0003" in reason for reason in decision.reasons), "the metric rule passed"
    assert decision.reasons[-1] == "expected cost 1,200.50 is higher than the champion's 1,000.00"


def test_a_higher_cost_passes_when_the_card_does_not_require_a_lower_one() -> None:
    decision = decide(
        rule(require_lower_cost_than_champion=False),
        report(
            model("challenger", 0.70, expected_cost=1200.5),
            model("baseline", 0.10),
            model("champion", 0.50, expected_cost=1000.0),
        ),
    )
    assert decision.promote, decision.summary
    assert not any("expected cost" in reason for reason in decision.reasons)


def test_every_failed_rule_is_named() -> None:
    decision = decide(
        CARD_RULE,
        report(
            model("challenger", 0.30, expected_cost=2000.0),
            model("baseline", 0.29),
            model("champion", 0.50, expected_cost=1000.0),
        ),
    )
    assert not decision.promote
    assert len(decision.reasons) == 3
    assert "the baseline's 0.2900" in decision.reasons[0]
    assert "champion v0003's 0.5000" in decision.reasons[1]
    assert "higher than the champion's" in decision.reasons[2]


@pytest.mark.parametrize("champion", [None, model("champion", 0.1)])
def test_a_challenger_metric_that_cannot_be_computed_is_refused(champion: ModelEvaluation | None) -> None:
    decision = decide(CARD_RULE, report(model("challenger", NAN), model("baseline", 0.10), champion))
    assert not decision.promote
    assert decision.reasons == ("the challenger's pr_auc cannot be computed on the test window",)


def test_the_rule_reads_the_card_metric() -> None:
    by_roc = rule(metric="roc_auc")
    challenger = model("challenger", pr_auc=0.9, roc_auc=0.80)
    decision = decide(by_roc, report(challenger, model("baseline", pr_auc=0.1, roc_auc=0.79)))
    assert not decision.promote
    assert "roc_auc" in decision.reasons[0]


def test_a_cost_metric_promotes_the_cheaper_model() -> None:
    by_cost = rule(metric="expected_cost", min_lift_over_baseline=0.0)
    decision = decide(by_cost, report(model("challenger", 0.5, expected_cost=100.0), model("baseline", 0.5)))
    assert decision.promote, decision.summary


def _with_nans() -> EvaluationReport:
    challenger = dataclasses.replace(model("challenger", NAN, roc_auc=NAN), precision=NAN, recall=NAN)
    evaluation = report(challenger, model("baseline", NAN, roc_auc=NAN), model("champion", 0.4))
    evaluation.notes.append("test window holds one class")
    return evaluation


def test_the_report_round_trips_with_nan_metrics(tmp_path: Path) -> None:
    evaluation = _with_nans()
    evaluation.write(tmp_path / "evaluation.json")
    back = EvaluationReport.read(tmp_path / "evaluation.json")

    assert back.challenger is not None
    assert back.champion is not None
    for name in ("pr_auc", "roc_auc", "precision", "recall"):
        assert math.isnan(back.challenger.metric(name)), name
    assert math.isnan(back.baseline.pr_auc)
    assert math.isnan(back.baseline.roc_auc)
    assert back.baseline.precision == evaluation.baseline.precision
    assert back.champion == evaluation.champion
    assert back.champion_version == "v0003"
    assert back.notes == ["test window holds one class"]
    assert dataclasses.replace(back, challenger=evaluation.challenger, baseline=evaluation.baseline) == evaluation
    # What the gate makes of it is the same on both sides of the file.
    assert decide(CARD_RULE, back) == decide(CARD_RULE, evaluation)


def test_the_report_file_is_strict_json(tmp_path: Path) -> None:
    _with_nans().write(tmp_path / "evaluation.json")

    def refuse(constant: str) -> float:
        raise ValueError(f"{constant} is not JSON")

    raw = json.loads((tmp_path / "evaluation.json").read_text(), parse_constant=refuse)
    assert raw["challenger"]["pr_auc"] is None


def test_a_costlier_challenger_is_refused_on_a_cost_metric() -> None:
    by_cost = rule(metric="expected_cost", min_lift_over_baseline=0.0)
    decision = decide(by_cost, report(model("challenger", 0.5, expected_cost=1100.0), model("baseline", 0.5)))
    assert not decision.promote
    assert "better than the baseline" in decision.reasons[0]


def test_a_cost_per_event_metric_is_lower_is_better() -> None:
    by_cost = rule(metric="expected_cost_per_event", min_lift_over_baseline=0.0)
    cheaper = report(model("challenger", 0.5, expected_cost=100.0), model("baseline", 0.5))
    costlier = report(model("challenger", 0.5, expected_cost=1100.0), model("baseline", 0.5))
    assert decide(by_cost, cheaper).promote, decide(by_cost, cheaper).summary
    assert not decide(by_cost, costlier).promote


def test_a_report_written_before_the_rename_reads_its_cost_per_transaction_as_per_event(tmp_path: Path) -> None:
    evaluation = report(model("challenger", 0.6), model("baseline", 0.5), model("champion", 0.55, expected_cost=2000.0))
    evaluation.write(tmp_path / "evaluation.json")
    raw = json.loads((tmp_path / "evaluation.json").read_text())
    for who in ("challenger", "baseline", "champion"):
        raw[who]["expected_cost_per_transaction"] = raw[who].pop("expected_cost_per_event")
    (tmp_path / "evaluation.json").write_text(json.dumps(raw))

    back = EvaluationReport.read(tmp_path / "evaluation.json")

    assert back == evaluation
    assert back.champion is not None
    assert back.champion.metric("expected_cost_per_event") == pytest.approx(2.0)
