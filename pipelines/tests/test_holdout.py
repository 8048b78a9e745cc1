"""The time-shifted holdout's gap and flag (``berg_pipelines.runtime.holdout``), its report section, and the
defaults that keep reports and datasets written before it readable."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from berg_fraud.use_case import problem_card
from berg_pipelines.runtime.evaluate import EvaluationReport, evaluate_model
from berg_pipelines.runtime.frames import DatasetInfo
from berg_pipelines.runtime.holdout import GAP_LIMIT, frozen_holdout, pr_auc_gap, render_frozen_holdout

pytestmark = pytest.mark.unit

CARD = problem_card()
LABEL = CARD.target.column


def test_the_gap_is_test_minus_frozen_and_flagged_only_above_the_limit() -> None:
    assert pr_auc_gap(0.9, 0.8, 0.15) == (pytest.approx(0.1), False)
    gap, flagged = pr_auc_gap(0.9, 0.2, 0.15)
    assert gap == pytest.approx(0.7)
    assert flagged
    assert pr_auc_gap(0.75, 0.5, 0.25)[1] is False, "at the limit is not above it"
    assert pr_auc_gap(0.5, 0.6, 0.15) == (pytest.approx(-0.1), False), "better on the frozen rows: not flagged"
    gap, flagged = pr_auc_gap(math.nan, 0.3)
    assert math.isnan(gap)
    assert not flagged


def test_the_default_limit_lies_between_the_measured_clean_and_leaky_gaps() -> None:
    # The numbers of the module docstring (bench/frozen_holdout.py): clean models up to 0.34, a label in a view 0.98.
    assert 0.34 < GAP_LIMIT < 0.98
    assert not pr_auc_gap(0.5510, 0.2147)[1]
    assert pr_auc_gap(1.0, 0.0190)[1]


def _frame(scores: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"score": scores, LABEL: labels, "amount": np.full(len(labels), 50.0)})


def _score(frame: pd.DataFrame) -> np.ndarray:
    return frame["score"].to_numpy(dtype=np.float64)


def test_the_model_is_scored_on_the_frozen_rows_at_its_test_threshold() -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random(2000) < 0.05).astype("int64")
    separating = np.where(labels == 1, rng.uniform(0.6, 1.0, len(labels)), rng.uniform(0.0, 0.7, len(labels)))
    test = _frame(separating, labels)
    on_test = evaluate_model("challenger", _score, CARD, test, test, "amount")

    same = frozen_holdout("challenger", _score, CARD, on_test, test, "amount", frozen_at="2026-02-25T00:00:00+00:00")
    assert same["pr_auc_gap"] == pytest.approx(0.0)
    assert same["expected_cost_gap"] == pytest.approx(0.0)
    assert not same["flagged"]
    assert same["threshold"] == on_test.threshold == same["frozen_evaluation"]["threshold"]
    assert same["rows"] == len(test)
    assert same["limit"] == GAP_LIMIT

    # Every score moved up by 0.3: a threshold re-chosen on these rows would move with it, the test one does not.
    shifted = frozen_holdout(
        "challenger", _score, CARD, on_test, test.assign(score=test["score"] + 0.3), "amount", frozen_at="x"
    )
    assert shifted["pr_auc_gap"] == pytest.approx(0.0)
    assert shifted["frozen_evaluation"]["threshold"] == on_test.threshold
    assert shifted["frozen_evaluation"]["recall"] == pytest.approx(1.0)
    assert shifted["expected_cost_gap"] != pytest.approx(0.0)

    noise = frozen_holdout(
        "challenger", _score, CARD, on_test, test.assign(score=rng.random(len(test))), "amount", frozen_at="x"
    )
    assert noise["test"]["pr_auc"] == pytest.approx(on_test.pr_auc)
    assert noise["frozen"]["pr_auc"] < 0.2
    assert noise["pr_auc_gap"] == pytest.approx(on_test.pr_auc - noise["frozen"]["pr_auc"])
    assert noise["flagged"]
    assert noise["frozen"]["expected_cost"] == noise["frozen_evaluation"]["expected_cost"]


def test_the_report_section_says_whether_the_gap_is_flagged() -> None:
    holdout = {
        "model": "challenger",
        "frozen_at": "2026-02-25T00:00:00+00:00",
        "rows": 1000,
        "threshold": 0.4,
        "test": {"pr_auc": 0.9, "expected_cost": 100.0},
        "frozen": {"pr_auc": 0.1, "expected_cost": None},
        "pr_auc_gap": 0.8,
        "expected_cost_gap": None,
        "limit": 0.5,
        "flagged": True,
    }
    page = render_frozen_holdout(holdout)
    assert "Time-shifted holdout" in page
    assert "Flagged" in page
    assert "+0.8000" in page
    assert "n/a" in page, "a cost written as null reads as not available"
    clean = render_frozen_holdout({**holdout, "pr_auc_gap": 0.1, "flagged": False})
    assert "Not flagged" in clean
    assert render_frozen_holdout(None) == ""
    assert render_frozen_holdout({}) == ""


def test_reports_and_datasets_written_before_the_holdout_still_read(tmp_path: Path) -> None:
    test = _frame(np.linspace(0, 1, 100), (np.arange(100) % 10 == 0).astype("int64"))
    model = evaluate_model("challenger", _score, CARD, test, test, "amount")
    report = EvaluationReport(card="c@v1", test_rows=100, test_positives=10, challenger=model, baseline=model)
    path = tmp_path / "evaluation.json"
    report.write(path)
    raw = json.loads(path.read_text())
    assert raw["frozen_holdout"] is None
    del raw["frozen_holdout"]
    path.write_text(json.dumps(raw))
    assert EvaluationReport.read(path).frozen_holdout is None

    report.frozen_holdout = frozen_holdout("challenger", _score, CARD, model, test, "amount", frozen_at="x")
    report.write(path)
    assert EvaluationReport.read(path).frozen_holdout == json.loads(json.dumps(report.frozen_holdout))

    info = DatasetInfo(
        label_column=LABEL,
        amount_column="amount",
        feature_columns=("score",),
        feature_service="s",
        window_start="a",
        window_end="b",
        split_times=("c", "d"),
        rows={"test": 100},
        positives={"test": 10},
    )
    info.write(tmp_path)
    raw = json.loads((tmp_path / "info.json").read_text())
    del raw["frozen_test"]
    (tmp_path / "info.json").write_text(json.dumps(raw))
    assert DatasetInfo.read(tmp_path) == dataclasses.replace(info, frozen_test={})
