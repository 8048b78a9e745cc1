"""podman for the image tests: the images scripts/images.sh built, and containers that are always removed.

scripts/images.sh (``make images``) installs podman, builds the seven images as ``localhost/berg-<name>:dev`` and
writes the containers.conf podman needs on this machine; these tests use that file and build nothing. A missing
podman, configuration or image fails the test that needs it, naming the fix; nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "berg" / "images"
CONTAINERS_CONF = CACHE_DIR / "containers.conf"
NAME_PREFIX = "berg-images-test-"
"""Every container the tests start is named so; the session ends by checking none is left."""


class Podman:
    """Runs podman with scripts/images.sh's containers.conf; the caller checks the exit code."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.executable, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def check(self, *args: str, timeout: float = 120) -> str:
        """Run podman and return its stdout; fail the test with its stderr when it fails."""
        result = self(*args, timeout=timeout)
        assert result.returncode == 0, f"podman {' '.join(args)}: exit {result.returncode}\n{result.stderr}"
        return result.stdout

    def containers(self) -> list[str]:
        """The names of the test containers that exist (running or not)."""
        out = self.check("ps", "--all", "--filter", f"name=^{NAME_PREFIX}", "--format", "{{.Names}}")
        return out.split()


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    executable = shutil.which("podman")
    if executable is None or not CONTAINERS_CONF.is_file():
        pytest.fail("podman is not set up: run `make images` (scripts/images.sh installs and configures it)", False)
    runner = Podman(executable)
    left_before = runner.containers()
    assert not left_before, f"test containers left by an earlier run: {left_before} (podman rm -f them)"
    yield runner
    left = runner.containers()
    assert not left, f"the tests left containers behind: {left}"


@pytest.fixture
def container_name(podman: Podman) -> Iterator[str]:
    """A fresh container name; whatever runs under it is removed when the test ends, passed or failed."""
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:12]}"
    yield name
    podman("rm", "--force", "--time", "0", "--ignore", name)


def require_image(podman: Podman, image: str) -> None:
    """Fail with the fix when ``image`` was not built."""
    if podman("image", "exists", image).returncode != 0:
        pytest.fail(f"{image} is not built: run `make images` (or scripts/images.sh)", pytrace=False)
