"""The local stack's use case: ``BERG_USE_CASE``, or the only one installed; it names the demo's model."""

from __future__ import annotations

from pathlib import Path

import pytest

from berg_app.stack.local import LocalStack, StackError
from berg_app.stack.settings import StackSettings
from tests.use_cases import CHURN, FRAUD, installed

pytestmark = pytest.mark.unit


def test_the_stack_serves_the_use_case_set_or_the_only_one_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    installed(monkeypatch, FRAUD, CHURN)
    assert LocalStack(StackSettings(state_dir=tmp_path, use_case="churn")).use_case().name == "churn"
    with pytest.raises(StackError, match=r"^BERG_USE_CASE: 2 use cases are installed \(churn, fraud\)"):
        LocalStack(StackSettings(state_dir=tmp_path)).use_case()
    installed(monkeypatch, CHURN)
    assert LocalStack(StackSettings(state_dir=tmp_path)).use_case().name == "churn"
