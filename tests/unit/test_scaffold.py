"""``berg new use-case``: the skeleton it writes is lint-clean and its own tests pass as generated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from berg_app.scaffold import ScaffoldError, scaffold_use_case

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_the_skeletons_own_tests_pass_and_ruff_finds_nothing(tmp_path: Path) -> None:
    written = scaffold_use_case("churn", tmp_path / "usecases")
    member = tmp_path / "usecases" / "churn"
    assert {path.relative_to(member).as_posix() for path in written} == {
        "pyproject.toml",
        "src/berg_churn/__init__.py",
        "src/berg_churn/contracts.py",
        "src/berg_churn/card_v1.yaml",
        "src/berg_churn/rules.py",
        "src/berg_churn/features.py",
        "src/berg_churn/use_case.py",
        "tests/test_churn_use_case.py",
    }
    environment = {**os.environ, "PYTHONPATH": str(member / "src")}
    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
        ],
        cwd=member,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout, tests.stdout
    ruff = Path(sys.executable).with_name("ruff")
    for command in (
        ["check", "--config", str(REPO / "pyproject.toml")],
        ["format", "--check", "--config", str(REPO / "pyproject.toml")],
    ):
        result = subprocess.run([str(ruff), *command, "."], cwd=member, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["Churn", "1churn", "churn-rate", "", "x" * 32])
def test_a_name_that_cannot_be_a_package_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ScaffoldError, match="not a use-case name"):
        scaffold_use_case(name, tmp_path)
    assert not any(tmp_path.iterdir())


def test_an_existing_use_case_is_never_overwritten(tmp_path: Path) -> None:
    scaffold_use_case("churn", tmp_path)
    card = tmp_path / "churn" / "src" / "berg_churn" / "card_v1.yaml"
    card.write_text("edited")
    with pytest.raises(ScaffoldError, match="exists already"):
        scaffold_use_case("churn", tmp_path)
    assert card.read_text() == "edited"
