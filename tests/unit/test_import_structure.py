"""Imports run one way: the core library imports no cycle and nothing built on it; nothing imports the application.

Read from the source with :mod:`ast` (nothing is imported), counting imports inside
functions too: a lazy import is still an import, and hiding a cycle in a function is
how the cycles this test guards against came about.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "src" / "berg"
APPLICATION_PACKAGES = sorted(
    path.name
    for path in [
        *ROOT.glob("app/src/*"),
        *ROOT.glob("services/*/src/*"),
        *ROOT.glob("pipelines/src/*"),
        *ROOT.glob("usecases/*/src/*"),
    ]
    if path.is_dir() and not path.name.endswith(".egg-info")
)
"""The packages built on the core library: the application (berg_app), the services, the pipeline and the
use cases (berg_features, berg_pipelines, berg_fraud, ...)."""
APPLICATION = "berg_app"
"""The `berg` command's package: the top; nothing but tests and benchmarks imports it."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in CORE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, functions included; not those under ``if TYPE_CHECKING:`` (never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node):
            for branch in node.orelse:
                yield from _import_nodes(ast.Module(body=[branch], type_ignores=[]))
        else:
            yield from _import_nodes(node)


def _imported(module: str, path: Path) -> Iterator[str]:
    """Every module ``module`` imports when it runs, anywhere in its file.

    ``from package import name`` counts as importing the module ``package.name`` when
    there is one (the package itself is then only its parent), else ``package``.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{anchor}.{base}" if base else anchor
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            yield submodule if submodule in MODULES else base


GRAPH = {module: {name for name in _imported(module, path) if name in MODULES} for module, path in MODULES.items()}


def test_the_application_packages_were_found() -> None:
    assert {APPLICATION, "berg_pipelines", "berg_features", "berg_serving", "berg_fraud"} <= set(APPLICATION_PACKAGES)


def _package_modules() -> Iterator[tuple[str, Path]]:
    """Every module of the core library, the services, the pipeline and the use cases, named from its root."""
    for root in [CORE, *ROOT.glob("services/*/src/*"), *ROOT.glob("pipelines/src/*"), *ROOT.glob("usecases/*/src/*")]:
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_nothing_but_tests_imports_the_application() -> None:
    modules = dict(_package_modules())
    assert {"berg.usecase", "berg_serving.champion", "berg_fraud.use_case"} <= set(modules)
    importers = sorted(
        f"{module} imports {name}"
        for module, path in modules.items()
        for name in _imported(module, path)
        if name.split(".")[0] == APPLICATION
    )
    assert not importers, "the application is imported:\n" + "\n".join(importers)


def test_the_core_library_has_no_entry_point_and_none_of_the_applications_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "scripts" not in project
    assert "entry-points" not in project
    dependencies = {re.split(r"[\[<>=~! ]", requirement, maxsplit=1)[0] for requirement in project["dependencies"]}
    assert not dependencies & {"typer", "rich", "supervisor"}, dependencies


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_core_library_imports_no_service_and_not_the_pipeline(module: str) -> None:
    upward = sorted(
        name
        for name in _imported(module, MODULES[module])
        if name.split(".")[0] in APPLICATION_PACKAGES or name.split(".")[0] == "services"
    )
    assert not upward, (
        f"{module} imports {upward}: the core library must not depend on the application, a service, the "
        "pipeline or a use case"
    )


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("berg.features.point_in_time", "berg.features.offline_store"),
        ("berg.registry.storage", "berg.registry._local"),
        ("berg.registry.storage", "berg.registry._fsspec"),
    ],
)
def test_a_lower_module_does_not_import_the_one_built_on_it(lower: str, upper: str) -> None:
    assert lower in MODULES
    assert upper in MODULES
    assert upper not in GRAPH[lower], f"{lower} imports {upper}, which is built on it"


def _cycle_through(start: str) -> list[str] | None:
    """A shortest import cycle from ``start`` back to itself, if there is one (breadth first)."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        current = queue.pop(0)
        for name in sorted(GRAPH[current]):
            if name == start:
                return [*paths[current], start]
            if name not in paths:
                paths[name] = [*paths[current], name]
                queue.append(name)
    return None


def test_no_module_of_the_core_library_imports_itself_through_others() -> None:
    cycles = {" -> ".join(cycle) for module in sorted(MODULES) if (cycle := _cycle_through(module)) is not None}
    assert not cycles, "import cycles in src/berg:\n" + "\n".join(sorted(cycles))
