"""The platform names no use case: the core library, the services and the pipeline are generic.

A use case (card fraud today) belongs in its own package. While it moves there,
the modules that still name it are listed in ``modules_naming_a_use_case.txt``;
the list may only shrink: a module that starts naming a use case fails this
test, and so does a listed module that no longer does (strike it from the list).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_SOURCES = ("src/berg", "app/src", "services/*/src", "pipelines/src")
USE_CASE_WORDS = re.compile(r"fraud|merchant|chargeback|impression|campaign", re.IGNORECASE)
STILL_NAMING = Path(__file__).with_name("modules_naming_a_use_case.txt")


def modules_naming_a_use_case() -> set[str]:
    found = set()
    for pattern in PLATFORM_SOURCES:
        for source in ROOT.glob(pattern):
            for module in source.rglob("*.py"):
                if USE_CASE_WORDS.search(module.read_text(encoding="utf-8")):
                    found.add(module.relative_to(ROOT).as_posix())
    return found


def still_listed() -> set[str]:
    lines = STILL_NAMING.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_no_new_platform_module_names_a_use_case() -> None:
    new = sorted(modules_naming_a_use_case() - still_listed())
    assert not new, f"these platform modules name a use case; move that code into the use case's package: {new}"


def test_the_list_of_modules_still_naming_a_use_case_only_shrinks() -> None:
    cleaned = sorted(still_listed() - modules_naming_a_use_case())
    assert not cleaned, f"these modules no longer name a use case; strike them from {STILL_NAMING.name}: {cleaned}"
