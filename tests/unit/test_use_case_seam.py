"""The platform names no use case: the core library, the application, the services and the pipeline are generic.

A use case (card fraud, ad clicks) belongs in its own package under ``usecases/`` and
reaches the platform through its descriptor (:mod:`berg.usecase`). A platform module
that names one (its words below) fails this test: move that code into the use case.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_SOURCES = ("src/berg", "app/src", "services/*/src", "pipelines/src")
USE_CASE_WORDS = re.compile(r"fraud|merchant|chargeback|impression|campaign", re.IGNORECASE)


def platform_modules(root: Path) -> list[Path]:
    return [module for pattern in PLATFORM_SOURCES for source in root.glob(pattern) for module in source.rglob("*.py")]


def modules_naming_a_use_case(root: Path = ROOT) -> set[str]:
    return {
        module.relative_to(root).as_posix()
        for module in platform_modules(root)
        if USE_CASE_WORDS.search(module.read_text(encoding="utf-8"))
    }


def test_no_platform_module_names_a_use_case() -> None:
    naming = sorted(modules_naming_a_use_case())
    assert not naming, f"these platform modules name a use case; move that code into the use case's package: {naming}"


def test_the_check_reads_every_platform_package_and_sees_a_module_naming_a_use_case(tmp_path: Path) -> None:
    scanned = {module.relative_to(ROOT).parts[0] for module in platform_modules(ROOT)}
    assert scanned == {"src", "app", "services", "pipelines"}
    for n, line in enumerate(("class FraudPredictor: ...", "KEY = 'merchant_id'", "CLICKS = 'impressions.raw'")):
        (tmp_path / "services" / f"s{n}" / "src").mkdir(parents=True)
        (tmp_path / "services" / f"s{n}" / "src" / "named.py").write_text(line + "\n", encoding="utf-8")
    (tmp_path / "src" / "berg").mkdir(parents=True)
    (tmp_path / "src" / "berg" / "generic.py").write_text("KEY = 'entity_id'\n", encoding="utf-8")
    assert modules_naming_a_use_case(tmp_path) == {f"services/s{n}/src/named.py" for n in range(3)}
