"""Which use case a pipeline step runs: its parameter, else the step process's ``BERG_USE_CASE``."""

from __future__ import annotations

import pytest

from berg.usecase import UseCaseError
from berg_pipelines.steps import PipelineSettings
from tests.use_cases import CHURN, FRAUD, installed

pytestmark = pytest.mark.unit


def test_a_step_without_a_use_case_parameter_runs_the_one_its_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed(monkeypatch, FRAUD, CHURN)
    with pytest.raises(UseCaseError, match="2 use cases are installed"):
        PipelineSettings("").resolve_use_case()
    monkeypatch.setenv("BERG_USE_CASE", "churn")
    assert PipelineSettings("").resolve_use_case().name == "churn"
    assert PipelineSettings("", use_case="fraud").resolve_use_case().name == "fraud"


def test_alone_the_installed_use_case_needs_no_name(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, CHURN)
    assert PipelineSettings("").resolve_use_case().name == "churn"
